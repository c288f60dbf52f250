package diskqueue

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// The position file holds two 32-byte slots written in turn, each
// "EDQ2", u64 sequence, u64 committed offset, u32 CRC32-C of the preceding 20 bytes.
// A write touches one slot only, so a crash mid-write leaves the other slot, with the previous
// position, intact: the update is atomic without the rename that ext4 turns into a flush.
const (
	positionMagic = "EDQ2"
	slotSize      = 32
)

type positionFile struct {
	f   *os.File
	seq uint64
}

// openPosition opens or creates the position file and returns the last committed offset
// (0 without a file). A file with no valid slot is reported as an error along with a usable
// positionFile, so the caller can log it and start from the oldest data.
func openPosition(dir string) (*positionFile, uint64, error) {
	f, err := os.OpenFile(filepath.Join(dir, metaFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, 0, fmt.Errorf("diskqueue: open position: %w", err)
	}
	p := &positionFile{f: f}
	buf := make([]byte, 2*slotSize)
	n, err := f.ReadAt(buf, 0)
	if n == 0 {
		return p, 0, nil
	}
	var off uint64
	found := false
	for i := 0; i*slotSize < n; i++ {
		seq, o, ok := decodeSlot(buf[i*slotSize : min((i+1)*slotSize, n)])
		if ok && (!found || seq > p.seq) {
			p.seq, off, found = seq, o, true
		}
	}
	if !found {
		return p, 0, fmt.Errorf("diskqueue: position file %s is corrupt (%d bytes, read error %v)", f.Name(), n, err)
	}
	return p, off, nil
}

func decodeSlot(b []byte) (seq, off uint64, ok bool) {
	if len(b) < 24 || string(b[:4]) != positionMagic ||
		binary.LittleEndian.Uint32(b[20:]) != crc32.Checksum(b[:20], castagnoli) {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[4:]), binary.LittleEndian.Uint64(b[12:]), true
}

// write stores off in the slot not holding the newest position.
func (p *positionFile) write(off uint64, durable bool) error {
	p.seq++
	var b [slotSize]byte
	copy(b[:4], positionMagic)
	binary.LittleEndian.PutUint64(b[4:], p.seq)
	binary.LittleEndian.PutUint64(b[12:], off)
	binary.LittleEndian.PutUint32(b[20:], crc32.Checksum(b[:20], castagnoli))
	if _, err := p.f.WriteAt(b[:], int64(p.seq%2)*slotSize); err != nil {
		return fmt.Errorf("diskqueue: write position: %w", err)
	}
	if durable {
		if err := p.f.Sync(); err != nil {
			return fmt.Errorf("diskqueue: sync position: %w", err)
		}
	}
	return nil
}

func (p *positionFile) close() error {
	if p == nil {
		return nil
	}
	return p.f.Close()
}
