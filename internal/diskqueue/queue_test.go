package diskqueue

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// drops collects OnDrop calls.
type drops struct {
	mu      sync.Mutex
	records map[string]int
	items   map[string]int
}

func newDrops() *drops { return &drops{records: map[string]int{}, items: map[string]int{}} }

func (d *drops) add(reason string, records, items int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[reason] += records
	d.items[reason] += items
}

func (d *drops) get(reason string) (int, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.records[reason], d.items[reason]
}

func open(t *testing.T, dir string, d *drops, mod func(*Options)) *Queue {
	t.Helper()
	o := Options{Dir: dir, SegmentSize: 1024, Sync: SyncNever, OnDrop: d.add}
	if mod != nil {
		mod(&o)
	}
	q, err := Open(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// payload i is 100 bytes whose first 8 carry i, with Count i%7+1 and times i*1000.
func rec(i int) (Meta, []byte) {
	p := make([]byte, 100)
	binary.LittleEndian.PutUint64(p, uint64(i))
	for j := 8; j < len(p); j++ {
		p[j] = byte(i + j)
	}
	return Meta{Count: uint32(i%7 + 1), Tag: uint32(i % 3), MinTime: int64(i) * 1000, MaxTime: int64(i)*1000 + 500}, p
}

func appendN(t *testing.T, q *Queue, from, to int) (items int) {
	t.Helper()
	for i := from; i < to; i++ {
		m, p := rec(i)
		require.NoError(t, q.Append([]Meta{m}, [][]byte{p}))
		items += int(m.Count)
	}
	return items
}

// readAll reads until the queue is empty and returns the record numbers in order.
func readAll(t *testing.T, q *Queue) ([]int, []Record) {
	t.Helper()
	var ids []int
	var recs []Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		r, err := q.Read(ctx)
		cancel()
		if err == context.DeadlineExceeded {
			return ids, recs
		}
		require.NoError(t, err)
		i := int(binary.LittleEndian.Uint64(r.Payload))
		m, p := rec(i)
		require.Equal(t, m, r.Meta)
		require.Equal(t, p, r.Payload)
		ids = append(ids, i)
		recs = append(recs, r)
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestRoundTripAndResume(t *testing.T) {
	dir := t.TempDir()
	d := newDrops()
	q := open(t, dir, d, nil)
	appendN(t, q, 0, 50)
	ids, recs := readAll(t, q)
	require.Equal(t, seq(0, 50), ids)
	require.Greater(t, q.Stats().Segments, 3, "1 KiB segments must have rolled")

	// Acknowledge the first 20 only; the rest must come back after a restart.
	require.NoError(t, q.Commit(recs[19].End))
	require.NoError(t, q.Close())

	q = open(t, dir, d, nil)
	ids, recs = readAll(t, q)
	require.Equal(t, seq(20, 50), ids)
	require.NoError(t, q.Commit(recs[len(recs)-1].End))
	st := q.Stats()
	assert.Equal(t, 1, st.Segments, "acknowledged segments are deleted")
	assert.Zero(t, st.PendingBytes)
	require.NoError(t, q.Close())

	q = open(t, dir, d, nil)
	ids, _ = readAll(t, q)
	assert.Empty(t, ids, "nothing is delivered twice after everything was committed")
	appendN(t, q, 50, 55)
	ids, _ = readAll(t, q)
	assert.Equal(t, seq(50, 55), ids)
	r, _ := d.get(ReasonCorrupt)
	assert.Zero(t, r)
}

// Without Close, as after kill -9: the files hold what Append wrote, the position file what
// Commit wrote.
func TestResumeWithoutClose(t *testing.T) {
	dir := t.TempDir()
	d := newDrops()
	q, err := Open(Options{Dir: dir, SegmentSize: 1024, Sync: SyncNever, OnDrop: d.add})
	require.NoError(t, err)
	appendN(t, q, 0, 30)
	_, recs := readAll(t, q)
	require.NoError(t, q.Commit(recs[9].End))
	// q is abandoned, its descriptors left open; only the lock goes, as when a process dies.
	require.NoError(t, q.lock.Close())

	q2 := open(t, dir, d, nil)
	ids, _ := readAll(t, q2)
	assert.Equal(t, seq(10, 30), ids)
	q.closeFiles()
}

func TestBlockingReadWakesOnAppend(t *testing.T) {
	q := open(t, t.TempDir(), newDrops(), nil)
	got := make(chan Record, 1)
	go func() {
		r, err := q.Read(context.Background())
		if err == nil {
			got <- r
		}
		close(got)
	}()
	m, p := rec(7)
	require.NoError(t, q.Append([]Meta{m}, [][]byte{p}))
	select {
	case r := <-got:
		assert.Equal(t, p, r.Payload)
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not wake up")
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	q, err := Open(Options{Dir: t.TempDir()})
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { _, err := q.Read(context.Background()); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, q.Close())
	assert.ErrorIs(t, <-errc, ErrClosed)
	assert.ErrorIs(t, q.Append([]Meta{{}}, [][]byte{nil}), ErrClosed)
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	starts, err := listSegments(dir)
	require.NoError(t, err)
	return segmentPath(dir, starts[len(starts)-1])
}

func TestTornTailIsCutAndCounted(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  int64
	}{
		{"payload cut", 40},
		{"header cut", 130},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := newDrops()
			q := open(t, dir, d, func(o *Options) { o.SegmentSize = 1 << 20 })
			appendN(t, q, 0, 10)
			require.NoError(t, q.Close())
			path := lastSegment(t, dir)
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, fi.Size()-tc.cut))

			q = open(t, dir, d, func(o *Options) { o.SegmentSize = 1 << 20 })
			ids, _ := readAll(t, q)
			r, items := d.get(ReasonCorrupt)
			if tc.cut <= 100 {
				// Record 9 lost its payload end: its header still says how many items it had.
				assert.Equal(t, seq(0, 9), ids)
				assert.Equal(t, 1, r)
				m9, _ := rec(9)
				assert.Equal(t, int(m9.Count), items)
			} else {
				// Two bytes of record 9's header are left: one record lost, item count unknown.
				assert.Equal(t, seq(0, 9), ids)
				assert.Equal(t, 1, r)
				assert.Zero(t, items)
			}
			assert.Positive(t, q.Stats().CorruptBytes)
			// Appends continue after the cut, readable, with nothing corrupt left.
			appendN(t, q, 100, 102)
			ids, _ = readAll(t, q)
			assert.Equal(t, []int{100, 101}, ids)
		})
	}
}

func TestCorruptTailChecksum(t *testing.T) {
	dir := t.TempDir()
	d := newDrops()
	q := open(t, dir, d, func(o *Options) { o.SegmentSize = 1 << 20 })
	appendN(t, q, 0, 10)
	require.NoError(t, q.Close())
	path := lastSegment(t, dir)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	flipByte(t, path, fi.Size()-10)

	q = open(t, dir, d, nil)
	ids, _ := readAll(t, q)
	assert.Equal(t, seq(0, 9), ids)
	r, items := d.get(ReasonCorrupt)
	m9, _ := rec(9)
	assert.Equal(t, 1, r)
	assert.Equal(t, int(m9.Count), items)
	assert.EqualValues(t, headerSize+100, q.Stats().CorruptBytes)
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
}

// A sealed segment damaged in the middle or cut short loses the rest of that segment only.
func TestCorruptSealedSegment(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"checksum", func(t *testing.T, path string) { flipByte(t, path, 2*(headerSize+100)+50) }},
		{"truncated", func(t *testing.T, path string) { require.NoError(t, os.Truncate(path, 2*(headerSize+100)+50)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := newDrops()
			// 132-byte records, 7 per 1 KiB segment.
			q := open(t, dir, d, nil)
			appendN(t, q, 0, 30)
			require.NoError(t, q.Close())
			starts, err := listSegments(dir)
			require.NoError(t, err)
			require.Greater(t, len(starts), 2)
			tc.damage(t, segmentPath(dir, starts[1]))

			q = open(t, dir, d, nil)
			ids, _ := readAll(t, q)
			// Segment 0 holds 0..6, segment 1 holds 7..13: 7 and 8 survive, 9..13 are lost.
			want := append(seq(0, 9), seq(14, 30)...)
			assert.Equal(t, want, ids)
			r, items := d.get(ReasonCorrupt)
			lostItems := 0
			for i := 9; i < 14; i++ {
				m, _ := rec(i)
				lostItems += int(m.Count)
			}
			if tc.name == "checksum" {
				assert.Equal(t, 5, r)
				assert.Equal(t, lostItems, items)
			} else {
				// Record 9's header survived the cut; 10..13 left no trace but their bytes.
				m9, _ := rec(9)
				assert.Equal(t, 1, r)
				assert.Equal(t, int(m9.Count), items)
			}
			assert.EqualValues(t, 5*(headerSize+100), q.Stats().CorruptBytes)
		})
	}
}

func TestMaxBytesDropsOldestAndCounts(t *testing.T) {
	dir := t.TempDir()
	d := newDrops()
	const maxBytes = 4096
	q := open(t, dir, d, func(o *Options) { o.MaxBytes = maxBytes; o.SegmentSize = 1 << 20 })
	total := 0
	for i := 0; i < 500; i++ {
		total += appendN(t, q, i, i+1)
		require.LessOrEqual(t, q.Stats().DiskBytes, int64(maxBytes))
		require.LessOrEqual(t, dirBytes(t, dir), int64(maxBytes))
	}
	ids, recs := readAll(t, q)
	require.NotEmpty(t, ids)
	require.Equal(t, seq(ids[0], 500), ids, "what is left is the newest data, in order")
	got := 0
	for _, r := range recs {
		got += int(r.Count)
	}
	r, items := d.get(ReasonMaxBytes)
	assert.Equal(t, ids[0], r, "every record before the first one read was counted as dropped")
	assert.Equal(t, total, got+items, "dropped items equal what is missing")
}

// Records already handed to the reader are the reader's to count: dropping their segment must
// not count them again.
func TestMaxBytesDoesNotCountReadRecords(t *testing.T) {
	dir := t.TempDir()
	d := newDrops()
	q := open(t, dir, d, func(o *Options) { o.MaxBytes = 2048; o.SegmentSize = 512 })
	appendN(t, q, 0, 3)
	ids, _ := readAll(t, q)
	require.Equal(t, seq(0, 3), ids)
	appendN(t, q, 3, 40)
	ids, _ = readAll(t, q)
	r, _ := d.get(ReasonMaxBytes)
	assert.Equal(t, ids[0]-3, r)
}

func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		if filepath.Ext(e.Name()) == segmentSuffix {
			fi, err := e.Info()
			require.NoError(t, err)
			n += fi.Size()
		}
	}
	return n
}

func TestTooLargeRecordIsRefused(t *testing.T) {
	q := open(t, t.TempDir(), newDrops(), func(o *Options) { o.MaxBytes = 1000 })
	err := q.Append([]Meta{{}}, [][]byte{make([]byte, 2000)})
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestMaxAgeDropsOnRead(t *testing.T) {
	d := newDrops()
	now := time.UnixMilli(100_000)
	q := open(t, t.TempDir(), d, func(o *Options) {
		o.MaxAge = 50 * time.Second
		o.Now = func() time.Time { return now }
	})
	appendN(t, q, 0, 100) // MaxTime i*1000+500: records 0..49 are older than 50 s.
	ids, _ := readAll(t, q)
	assert.Equal(t, seq(50, 100), ids)
	r, items := d.get(ReasonMaxAge)
	want := 0
	for i := 0; i < 50; i++ {
		m, _ := rec(i)
		want += int(m.Count)
	}
	assert.Equal(t, 50, r)
	assert.Equal(t, want, items)
}

// Records dropped for age with nothing in flight before them are committed at once, so a
// restart does not read and count them again.
func TestMaxAgeDropsAreNotCountedTwice(t *testing.T) {
	dir := t.TempDir()
	d := newDrops()
	now := time.UnixMilli(1_000_000)
	mod := func(o *Options) {
		o.MaxAge = time.Second
		o.Now = func() time.Time { return now }
	}
	q := open(t, dir, d, mod)
	appendN(t, q, 0, 10) // all older than a second
	ids, _ := readAll(t, q)
	assert.Empty(t, ids)
	require.NoError(t, q.Close())
	q = open(t, dir, d, mod)
	ids, _ = readAll(t, q)
	assert.Empty(t, ids)
	r, _ := d.get(ReasonMaxAge)
	assert.Equal(t, 10, r)
	assert.Zero(t, q.Stats().PendingBytes)
}

func TestCorruptPositionFileRereadsFromOldest(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, newDrops(), nil)
	appendN(t, q, 0, 5)
	_, recs := readAll(t, q)
	require.NoError(t, q.Commit(recs[1].End))
	require.NoError(t, q.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, metaFile), []byte("garbage"), 0o600))

	q = open(t, dir, newDrops(), nil)
	ids, _ := readAll(t, q)
	assert.Equal(t, seq(0, 5), ids, "a bad position file means duplicates, never loss")
}

func TestCommitPastReadIsAnError(t *testing.T) {
	q := open(t, t.TempDir(), newDrops(), nil)
	appendN(t, q, 0, 2)
	assert.Error(t, q.Commit(10_000))
}

func TestUnexpectedFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x.seg"), nil, 0o600))
	_, err := Open(Options{Dir: dir})
	assert.ErrorContains(t, err, "x.seg")
}

// A full disk (here: RLIMIT_FSIZE, which makes write fail with EFBIG) fails Append with an
// error and leaves no partial record behind.
func TestWriteFailureLeavesNoPartialRecord(t *testing.T) {
	dir := t.TempDir()
	d := newDrops()
	q := open(t, dir, d, func(o *Options) { o.SegmentSize = 1 << 20 })
	appendN(t, q, 0, 3)

	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	lim := old
	lim.Cur = 3*(headerSize+100) + 50
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim))
	m, p := rec(3)
	err := q.Append([]Meta{m}, [][]byte{p})
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old))
	require.Error(t, err, "write past the file size limit must fail")

	appendN(t, q, 4, 6)
	require.NoError(t, q.Close())
	q = open(t, dir, d, nil)
	ids, _ := readAll(t, q)
	assert.Equal(t, []int{0, 1, 2, 4, 5}, ids)
	r, _ := d.get(ReasonCorrupt)
	assert.Zero(t, r, "no torn record was left in the file")
}

func TestConcurrentAppendAndRead(t *testing.T) {
	q := open(t, t.TempDir(), newDrops(), func(o *Options) { o.Sync = SyncInterval; o.SyncInterval = time.Millisecond })
	const writers, per = 4, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				m, p := rec(w*per + i)
				if err := q.Append([]Meta{m}, [][]byte{p}); err != nil {
					panic(fmt.Sprint(err))
				}
			}
		}(w)
	}
	seen := map[int]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(seen) < writers*per {
		r, err := q.Read(ctx)
		require.NoError(t, err)
		seen[int(binary.LittleEndian.Uint64(r.Payload))] = true
		require.NoError(t, q.Commit(r.End))
	}
	wg.Wait()
	assert.Len(t, seen, writers*per)
}

func BenchmarkAppendRead(b *testing.B) {
	for _, sync := range []SyncPolicy{SyncNever, SyncInterval} {
		b.Run(string(sync), func(b *testing.B) {
			q, err := Open(Options{Dir: b.TempDir(), Sync: sync})
			require.NoError(b, err)
			defer q.Close()
			p := make([]byte, 16<<10)
			metas, payloads := []Meta{{Count: 1000}}, [][]byte{p}
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				require.NoError(b, q.Append(metas, payloads))
				r, err := q.Read(context.Background())
				require.NoError(b, err)
				require.NoError(b, q.Commit(r.End))
			}
		})
	}
}

// A crash while the position is written can tear one slot; the other keeps the previous one.
func TestTornPositionSlotFallsBack(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, newDrops(), nil)
	appendN(t, q, 0, 5)
	_, recs := readAll(t, q)
	require.NoError(t, q.Commit(recs[1].End)) // seq 1 → slot 1
	require.NoError(t, q.Commit(recs[3].End)) // seq 2 → slot 0
	require.NoError(t, q.Close())
	flipByte(t, filepath.Join(dir, metaFile), 14)

	q = open(t, dir, newDrops(), nil)
	ids, _ := readAll(t, q)
	assert.Equal(t, seq(2, 5), ids)
}

func TestDirectoryIsLocked(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, newDrops(), nil)
	_, err := Open(Options{Dir: dir})
	assert.ErrorContains(t, err, "in use")
	require.NoError(t, q.Close())
	q2, err := Open(Options{Dir: dir})
	require.NoError(t, err, "Close releases the lock")
	require.NoError(t, q2.Close())
}
