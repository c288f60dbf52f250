package diskqueue

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/edgetel/edgetel/internal/testing/testfs"
)

// bigRec is record i with a 4 KiB payload carrying i in its first 8 bytes.
func bigRec(i int) (Meta, []byte) {
	p := make([]byte, 4<<10)
	binary.LittleEndian.PutUint64(p, uint64(i))
	return Meta{Count: 2, MinTime: int64(i), MaxTime: int64(i)}, p
}

// A file system smaller than max_bytes fills up: the oldest records make room, counted as
// disk_full, every append succeeds, and what is left is the newest data, in order.
func TestDiskFullDropsOldest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	testfs.MountTmpfs(t, dir, "1m")
	d := newDrops()
	core, logs := observer.New(zap.InfoLevel)
	q := open(t, dir, d, func(o *Options) {
		o.MaxBytes = 1 << 30
		o.SegmentSize = 8 << 20
		o.Logger = zap.New(core)
	})
	assert.Len(t, logs.FilterMessageSnippet("less room than max_bytes").All(), 1, "the start-up check says what a small disk means")
	const n = 1000 // 4 MiB through a 1 MiB file system
	for i := range n {
		m, p := bigRec(i)
		require.NoError(t, q.Append([]Meta{m}, [][]byte{p}), "record %d", i)
	}
	records, items := d.get(ReasonDiskFull)
	require.Positive(t, records)
	assert.Equal(t, 2*records, items)
	var ids []int
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		r, err := q.Read(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		require.NoError(t, err)
		ids = append(ids, int(binary.LittleEndian.Uint64(r.Payload)))
	}
	require.NotEmpty(t, ids)
	assert.Equal(t, seq(records, n), ids, "the newest records are kept, in order; the dropped ones are counted")
	assert.Less(t, len(ids), n/2, "the file system held only part of the data")
}

// When the space is taken by something else and the queue has nothing older to drop, Append
// fails with ErrDiskFull and leaves nothing half-written; once space is back, appends work.
func TestDiskFullWithNothingToDrop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	testfs.MountTmpfs(t, dir, "1m")
	filler := filepath.Join(dir, "other-data")
	f, err := os.Create(filler)
	require.NoError(t, err)
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	require.NoError(t, f.Close())
	d := newDrops()
	q := open(t, dir, d, nil)
	m, p := bigRec(0)
	err = q.Append([]Meta{m}, [][]byte{p})
	require.ErrorIs(t, err, ErrDiskFull)
	assert.Zero(t, q.Stats().DiskBytes)

	require.NoError(t, os.Remove(filler))
	for i := 1; i < 4; i++ {
		m, p := bigRec(i)
		require.NoError(t, q.Append([]Meta{m}, [][]byte{p}))
	}
	r, err := q.Read(context.Background())
	require.NoError(t, err)
	assert.Equal(t, uint64(1), binary.LittleEndian.Uint64(r.Payload), "no trace of the failed append")
	records, _ := d.get(ReasonCorrupt)
	assert.Zero(t, records)
}

// failingSync makes the first n fsyncs fail, as a disk's write error does, and records at each
// call how many bytes the queue had written again so far.
type failingSync struct {
	q         *Queue
	fail      int
	calls     int
	rewritten []int64
}

func (s *failingSync) sync(f *os.File) error {
	s.calls++
	s.rewritten = append(s.rewritten, s.q.rewritten) // called with the queue's lock held
	if s.calls <= s.fail {
		return syscall.EIO
	}
	return f.Sync()
}

// Under fsync "always", an fsync that fails once is retried after writing the records again;
// one that keeps failing fails the Append and takes its records back out, so the error means
// "not stored" and nothing unsynced is reported as stored.
func TestFsyncFailureAlways(t *testing.T) {
	d := newDrops()
	q := open(t, t.TempDir(), d, func(o *Options) { o.Sync = SyncAlways })
	appendN(t, q, 0, 2)

	fs := &failingSync{q: q, fail: 1}
	q.fsync = fs.sync
	appendN(t, q, 2, 3)
	assert.Equal(t, 2, fs.calls, "the failed fsync was tried again")
	assert.Equal(t, []int64{0, headerSize + 100}, fs.rewritten, "the record was written again before the second fsync")

	fs = &failingSync{q: q, fail: 2}
	q.fsync = fs.sync
	m, p := rec(3)
	err := q.Append([]Meta{m}, [][]byte{p})
	require.ErrorIs(t, err, syscall.EIO)

	q.fsync = (*os.File).Sync
	appendN(t, q, 4, 6)
	ids, _ := readAll(t, q)
	assert.Equal(t, []int{0, 1, 2, 4, 5}, ids, "the refused record is not in the queue")
}

// Under fsync "interval", a failed fsync leaves the data buffered (it is still read and sent)
// and the next fsync is preceded by writing the unsynced range again: a later fsync that
// "succeeds" over pages the kernel already marked clean would otherwise forget them.
func TestFsyncFailureInterval(t *testing.T) {
	q := open(t, t.TempDir(), newDrops(), func(o *Options) { o.Sync = SyncInterval; o.SyncInterval = time.Hour })
	fs := &failingSync{q: q, fail: 2}
	q.fsync = fs.sync
	appendN(t, q, 0, 3)
	q.syncNow()
	assert.Equal(t, 2, fs.calls)
	assert.True(t, q.resync, "still unsynced")
	q.syncNow()
	assert.Equal(t, 3, fs.calls)
	unsynced := int64(3 * (headerSize + 100))
	assert.Equal(t, []int64{0, unsynced, 2 * unsynced}, fs.rewritten,
		"the unsynced records were written again before each fsync after the failure")
	assert.False(t, q.resync)
	assert.Equal(t, q.wOff, q.synced)
	ids, _ := readAll(t, q)
	assert.Equal(t, seq(0, 3), ids)
}
