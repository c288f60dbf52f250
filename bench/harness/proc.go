package harness

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// ProcSample is one reading of a process' resource use.
type ProcSample struct {
	CPUSeconds float64 // utime + stime
	RSS        int64   // VmRSS, bytes
	HWM        int64   // VmHWM (peak RSS), bytes
}

// ReadProc reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProc(pid int) (ProcSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("reading stat of %d: %w", pid, err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return ProcSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("reading status of %d: %w", pid, err)
	}
	return ProcSample{CPUSeconds: cpu, RSS: statusKB(status, "VmRSS:") << 10, HWM: statusKB(status, "VmHWM:") << 10}, nil
}

// parseStatCPU returns utime+stime in seconds. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short stat %q", stat)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed stat times %q %q", f[11], f[12])
	}
	return float64(ut+st) / clockTicks, nil
}

// statusKB returns a "Key:   123 kB" line's value.
func statusKB(status []byte, key string) int64 {
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

// DirBytes is the disk space used by the files under dir (apparent size, as a quota sees it).
func DirBytes(dir string) int64 {
	var total int64
	walkFiles(dir, func(size int64) { total += size })
	return total
}
