// Package diskqueue is a durable FIFO of opaque records on local disk, built for a remote-write
// buffer that must survive outages and crashes (the design follows vmagent's lib/persistentqueue).
//
// Records are appended to segment files named by their first byte's offset in one global,
// ever-growing byte stream. Every record carries a CRC32-C. The reader's committed position is
// kept in a small metadata file replaced atomically, so after a restart reading resumes at the
// oldest unacknowledged record. A torn or corrupt tail is cut off on Open, counted and logged;
// corrupt records met while reading are skipped to the next segment, counted and logged.
// The queue is bounded by bytes on disk and by record age; past either, the oldest records
// are dropped and reported through Options.OnDrop. When the file system fills up before
// MaxBytes is reached, the oldest records are dropped the same way (ReasonDiskFull) to make
// room; only when nothing older is left to drop does Append fail (ErrDiskFull).
//
// A failed fsync is never taken as "the data is on disk": on Linux the failed pages are marked
// clean, so a later fsync can succeed without writing them. The queue writes the unsynced range
// again before every fsync until one succeeds, and under SyncAlways cuts the records of an
// Append whose fsync keeps failing, which then returns the error.
//
// One goroutine reads (Read, Commit); any number may Append.
package diskqueue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// SyncPolicy says when appended records are fsynced.
type SyncPolicy string

const (
	// SyncAlways fsyncs before Append returns: records survive power loss.
	SyncAlways SyncPolicy = "always"
	// SyncInterval fsyncs every Options.SyncInterval: records survive a process crash at once
	// (they are in the page cache) and power loss after the interval.
	SyncInterval SyncPolicy = "interval"
	// SyncNever leaves flushing to the kernel.
	SyncNever SyncPolicy = "never"
)

// Drop reasons passed to Options.OnDrop.
const (
	ReasonMaxBytes = "max_bytes"
	ReasonMaxAge   = "max_age"
	ReasonCorrupt  = "corrupt"
	// ReasonDiskFull: the file system under the queue was full; the oldest records made room.
	ReasonDiskFull = "disk_full"
)

const (
	segmentSuffix = ".seg"
	metaFile      = "reader.pos"
	// DefaultSegmentSize is used when Options.SegmentSize is 0.
	DefaultSegmentSize = 8 << 20
)

// ErrClosed is returned by calls on a closed queue.
var ErrClosed = errors.New("diskqueue: closed")

// ErrDiskFull is returned by Append when the file system is full and the queue holds no older
// data it could drop to make room: the space is taken by something else.
var ErrDiskFull = errors.New("diskqueue: file system full")

// ErrTooLarge is returned by Append for a record that cannot fit under MaxBytes at all.
var ErrTooLarge = errors.New("diskqueue: record larger than max bytes")

// Options configure a Queue.
type Options struct {
	Dir string
	// SegmentSize is the size at which a new segment file starts. Data is freed a segment at a
	// time, so MaxBytes should be several segments; Open caps it at MaxBytes/4.
	SegmentSize int64
	// MaxBytes bounds the bytes on disk (0: unbounded). Oldest segments go first.
	MaxBytes int64
	// MaxAge drops records whose MaxTime is older than this when they are read (0: no limit).
	MaxAge       time.Duration
	Sync         SyncPolicy
	SyncInterval time.Duration
	Logger       *zap.Logger
	// OnDrop is told about every record the queue gives up on, with the record's item count
	// when it is known. Called with the queue's lock held: do not call back into the queue.
	OnDrop func(reason string, records, items int)
	// Now is the clock for MaxAge; time.Now when nil.
	Now func() time.Time
}

// Stats is a snapshot of the queue's state.
type Stats struct {
	// DiskBytes is what the segment files hold; it stays under MaxBytes.
	DiskBytes int64
	// PendingBytes is what lies between the committed position and the end.
	PendingBytes int64
	// UnreadBytes is what the reader has not read yet.
	UnreadBytes int64
	Segments    int
	// CorruptBytes counts bytes skipped or cut because they failed their checks.
	CorruptBytes int64
	// RewrittenBytes counts bytes written again because an fsync failed.
	RewrittenBytes int64
	// End and Committed are positions in the global byte stream: where the next record will
	// be written, and up to where everything is acknowledged.
	End, Committed uint64
}

type segment struct {
	start uint64
	f     *os.File
}

// Queue is a durable FIFO. Create it with Open.
type Queue struct {
	opts Options

	mu        sync.Mutex
	segs      []*segment // sorted; the last one is written
	pos       *positionFile
	lock      *os.File
	wOff      uint64 // end of the stream
	rOff      uint64 // next record to read
	committed uint64
	corrupt   int64
	dirty     bool
	closed    bool
	buf       []byte
	// synced is where the last successful fsync of the written segment ended; resync is set
	// after a failed one, until the range past synced has been written again and fsynced.
	synced    uint64
	resync    bool
	rewritten int64
	// fsync is (*os.File).Sync; tests replace it to fail, which no local file system does on
	// demand.
	fsync func(*os.File) error

	notify chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup
}

// Open opens or creates the queue in opts.Dir, cutting a torn tail off the last segment.
func Open(opts Options) (*Queue, error) {
	if opts.Dir == "" {
		return nil, errors.New("diskqueue: no directory")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sync == "" {
		opts.Sync = SyncInterval
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = time.Second
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.MaxBytes > 0 && opts.SegmentSize > opts.MaxBytes/4 {
		opts.SegmentSize = max(opts.MaxBytes/4, headerSize)
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("diskqueue: create %s: %w", opts.Dir, err)
	}
	q := &Queue{opts: opts, notify: make(chan struct{}, 1), done: make(chan struct{}), fsync: (*os.File).Sync}
	q.opts.SegmentSize = checkSpace(opts)
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	q.lock = lock
	if err := q.load(); err != nil {
		q.closeFiles()
		return nil, err
	}
	if opts.Sync == SyncInterval {
		q.wg.Add(1)
		go q.syncLoop()
	}
	return q, nil
}

func (q *Queue) load() error {
	starts, err := listSegments(q.opts.Dir)
	if err != nil {
		return err
	}
	pos, committed, err := openPosition(q.opts.Dir)
	if pos == nil {
		return err
	}
	q.pos = pos
	if err != nil {
		q.opts.Logger.Warn("Read position unreadable, resuming from the oldest segment", zap.Error(err))
		committed = 0
	}
	if len(starts) == 0 {
		starts = []uint64{committed}
	}
	for _, s := range starts {
		f, err := os.OpenFile(segmentPath(q.opts.Dir, s), os.O_RDWR|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("diskqueue: open segment: %w", err)
		}
		q.segs = append(q.segs, &segment{start: s, f: f})
	}
	if err := q.repairTail(); err != nil {
		return err
	}
	first := q.segs[0].start
	switch {
	case committed < first:
		committed = first
	case committed > q.wOff:
		q.opts.Logger.Warn("Read position is past the end of the data, resuming at the end",
			zap.Uint64("position", committed), zap.Uint64("end", q.wOff))
		committed = q.wOff
	}
	q.committed, q.rOff = committed, committed
	q.synced = q.wOff
	return nil
}

// repairTail validates the last segment record by record and cuts whatever follows the last
// good record: a crash can leave a partly written record there.
func (q *Queue) repairTail() error {
	last := q.segs[len(q.segs)-1]
	fi, err := last.f.Stat()
	if err != nil {
		return fmt.Errorf("diskqueue: stat segment: %w", err)
	}
	size := fi.Size()
	var pos int64
	for pos < size {
		_, _, n, err := readRecordAt(last.f, pos, size)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				return fmt.Errorf("diskqueue: read segment %s: %w", last.f.Name(), err)
			}
			cut := size - pos
			records, items := scanHeaders(last.f, pos, size)
			q.opts.Logger.Warn("Cutting corrupt tail of the last segment",
				zap.String("segment", last.f.Name()), zap.Int64("offset", pos),
				zap.Int64("bytes", cut), zap.Error(err))
			if err := last.f.Truncate(pos); err != nil {
				return fmt.Errorf("diskqueue: truncate torn tail: %w", err)
			}
			if err := last.f.Sync(); err != nil {
				return fmt.Errorf("diskqueue: sync after truncate: %w", err)
			}
			q.corrupt += cut
			// A torn tail holds at least one record, even when its header is gone.
			q.drop(ReasonCorrupt, max(records, 1), items)
			break
		}
		pos += n
	}
	q.wOff = last.start + uint64(pos)
	return nil
}

// Append stores records in order. When it returns nil they are written (and fsynced under
// SyncAlways). On an error the record that failed is cut off again, but records before it in
// the same call stay: a caller that retries the call stores those twice.
func (q *Queue) Append(metas []Meta, payloads [][]byte) error {
	if len(metas) != len(payloads) {
		return errors.New("diskqueue: metas and payloads differ in length")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	for i := range metas {
		if err := q.appendOne(metas[i], payloads[i]); err != nil {
			return err
		}
	}
	if q.opts.Sync == SyncAlways {
		if err := q.syncLast(); err != nil {
			q.cutUnsynced()
			return err
		}
	} else {
		q.dirty = true
	}
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return nil
}

func (q *Queue) appendOne(m Meta, payload []byte) error {
	size := int64(headerSize + len(payload))
	if q.opts.MaxBytes > 0 && size > q.opts.MaxBytes {
		return fmt.Errorf("%w: %d bytes, max_bytes %d", ErrTooLarge, size, q.opts.MaxBytes)
	}
	last := q.segs[len(q.segs)-1]
	if q.wOff > last.start && int64(q.wOff-last.start)+size > q.opts.SegmentSize {
		if err := q.roll(); err != nil {
			return err
		}
	}
	if err := q.makeRoom(size); err != nil {
		return err
	}
	q.buf = encodeRecord(q.buf[:0], m, payload)
	for {
		err := q.write(q.buf)
		if err == nil {
			q.wOff += uint64(size)
			return nil
		}
		if !isDiskFull(err) {
			return err
		}
		if err := q.freeForDiskFull(err); err != nil {
			return err
		}
	}
}

// write writes b at the end of the last segment, leaving no partial record behind on failure:
// the next append would follow garbage.
func (q *Queue) write(b []byte) error {
	last := q.segs[len(q.segs)-1]
	pos := int64(q.wOff - last.start)
	if _, err := last.f.WriteAt(b, pos); err != nil {
		if terr := last.f.Truncate(pos); terr != nil {
			q.opts.Logger.Error("Cannot cut a failed write", zap.Error(terr))
		}
		return fmt.Errorf("diskqueue: write: %w", err)
	}
	return nil
}

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// freeForDiskFull makes room after a write failed for lack of space by dropping the oldest
// segment, as MaxBytes does. When the written segment is the only one it is sealed first, so
// that it can go too. With nothing left to drop the space is someone else's: ErrDiskFull.
func (q *Queue) freeForDiskFull(cause error) error {
	if len(q.segs) == 1 {
		if q.wOff == q.segs[0].start {
			return fmt.Errorf("%w (nothing older left to drop): %w", ErrDiskFull, cause)
		}
		if err := q.roll(); err != nil {
			return fmt.Errorf("%w: %w", ErrDiskFull, err)
		}
	}
	return q.dropOldest(ReasonDiskFull)
}

// makeRoom drops oldest segments until size more bytes fit under MaxBytes.
func (q *Queue) makeRoom(size int64) error {
	if q.opts.MaxBytes <= 0 {
		return nil
	}
	for int64(q.wOff-q.segs[0].start)+size > q.opts.MaxBytes {
		if len(q.segs) == 1 {
			if err := q.roll(); err != nil {
				return err
			}
		}
		if err := q.dropOldest(ReasonMaxBytes); err != nil {
			return err
		}
	}
	return nil
}

// dropOldest deletes the oldest segment, counting the records the reader has not read yet.
// Records already read are in the caller's hands and are counted there.
func (q *Queue) dropOldest(reason string) error {
	seg := q.segs[0]
	end := q.segs[1].start
	if q.rOff < end {
		from := max(q.rOff, seg.start)
		records, items := scanHeaders(seg.f, int64(from-seg.start), int64(end-seg.start))
		msg := "Buffer full, dropping oldest data"
		if reason == ReasonDiskFull {
			msg = "File system under the buffer is full, dropping oldest data to make room"
		}
		q.opts.Logger.Warn(msg, zap.String("reason", reason),
			zap.Int("records", records), zap.Int("items", items), zap.Int64("max_bytes", q.opts.MaxBytes))
		q.drop(reason, records, items)
		q.rOff = end
	}
	return q.removeOldest()
}

func (q *Queue) removeOldest() error {
	seg := q.segs[0]
	q.segs = q.segs[1:]
	_ = seg.f.Close()
	if err := os.Remove(segmentPath(q.opts.Dir, seg.start)); err != nil {
		return fmt.Errorf("diskqueue: remove segment: %w", err)
	}
	return nil
}

func (q *Queue) roll() error {
	if q.opts.Sync != SyncNever {
		if err := q.syncLast(); err != nil {
			return fmt.Errorf("diskqueue: sealing segment: %w", err)
		}
	}
	f, err := os.OpenFile(segmentPath(q.opts.Dir, q.wOff), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("diskqueue: new segment: %w", err)
	}
	q.segs = append(q.segs, &segment{start: q.wOff, f: f})
	if q.opts.Sync != SyncNever {
		syncDir(q.opts.Dir)
	}
	return nil
}

// Read returns the next record, waiting for one while the queue is empty. Records whose
// MaxTime is older than MaxAge are dropped on the way, corrupt ones skipped; both are counted.
func (q *Queue) Read(ctx context.Context) (Record, error) {
	for {
		rec, ok, err := q.tryRead()
		if err != nil || ok {
			return rec, err
		}
		select {
		case <-q.notify:
		case <-q.done:
			return Record{}, ErrClosed
		case <-ctx.Done():
			return Record{}, ctx.Err()
		}
	}
}

func (q *Queue) tryRead() (Record, bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return Record{}, false, ErrClosed
		}
		if q.rOff >= q.wOff {
			return Record{}, false, nil
		}
		i := q.segmentOf(q.rOff)
		seg, end := q.segs[i], q.segEnd(i)
		m, payload, n, err := readRecordAt(seg.f, int64(q.rOff-seg.start), int64(end-seg.start))
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				return Record{}, false, fmt.Errorf("diskqueue: read: %w", err)
			}
			q.skipCorrupt(seg, end, err)
			continue
		}
		rec := Record{Meta: m, Payload: payload, Offset: q.rOff, End: q.rOff + uint64(n)}
		q.rOff = rec.End
		if q.opts.MaxAge > 0 && m.MaxTime < q.opts.Now().Add(-q.opts.MaxAge).UnixMilli() {
			q.drop(ReasonMaxAge, 1, int(m.Count))
			q.skipCommitted(rec.Offset, rec.End)
			continue
		}
		return rec, true, nil
	}
}

// skipCorrupt gives up on the rest of a segment: without a trustworthy length there is no
// next record to find in it.
func (q *Queue) skipCorrupt(seg *segment, end uint64, cause error) {
	lost := end - q.rOff
	records, items := scanHeaders(seg.f, int64(q.rOff-seg.start), int64(end-seg.start))
	q.opts.Logger.Error("Corrupt data in buffer, skipping the rest of the segment",
		zap.String("segment", seg.f.Name()), zap.Uint64("offset", q.rOff-seg.start),
		zap.Uint64("bytes", lost), zap.Error(cause))
	q.corrupt += int64(lost)
	q.drop(ReasonCorrupt, max(records, 1), items)
	q.skipCommitted(q.rOff, end)
	q.rOff = end
}

// skipCommitted moves the committed position over [from, to), data the queue itself gave up
// on, when nothing before it is still with the reader: otherwise it would be read and counted
// again after a restart. With records in flight, their commit covers it later.
func (q *Queue) skipCommitted(from, to uint64) {
	if q.committed != from {
		return
	}
	q.committed = to
	if err := q.pos.write(to, q.opts.Sync == SyncAlways); err != nil {
		q.opts.Logger.Error("Persisting the read position failed", zap.Error(err))
	}
	q.dirty = q.dirty || q.opts.Sync != SyncAlways
}

// segmentOf returns the index of the segment holding off; off must be below wOff.
func (q *Queue) segmentOf(off uint64) int {
	i := sort.Search(len(q.segs), func(i int) bool { return q.segs[i].start > off })
	return max(i-1, 0)
}

func (q *Queue) segEnd(i int) uint64 {
	if i+1 < len(q.segs) {
		return q.segs[i+1].start
	}
	return q.wOff
}

// Commit acknowledges every record that ends at or before end: it persists the position and
// deletes segments that hold nothing unacknowledged.
func (q *Queue) Commit(end uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if end <= q.committed {
		return nil
	}
	if end > q.rOff {
		return fmt.Errorf("diskqueue: commit %d past the read position %d", end, q.rOff)
	}
	q.committed = end
	if err := q.pos.write(end, q.opts.Sync == SyncAlways); err != nil {
		return err
	}
	q.dirty = q.opts.Sync != SyncAlways
	for len(q.segs) > 1 && q.segs[1].start <= q.committed {
		if err := q.removeOldest(); err != nil {
			return err
		}
	}
	return nil
}

// Stats returns a snapshot.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.segs) == 0 {
		return Stats{}
	}
	return Stats{
		DiskBytes:      int64(q.wOff - q.segs[0].start),
		PendingBytes:   int64(q.wOff - max(q.committed, q.segs[0].start)),
		UnreadBytes:    int64(q.wOff - q.rOff),
		Segments:       len(q.segs),
		CorruptBytes:   q.corrupt,
		RewrittenBytes: q.rewritten,
		End:            q.wOff,
		Committed:      max(q.committed, q.segs[0].start),
	}
}

// Close flushes and closes the queue. The position last passed to Commit is kept.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	close(q.done)
	var err error
	if len(q.segs) > 0 && q.opts.Sync != SyncNever {
		err = errors.Join(q.syncLast(), q.pos.f.Sync())
	}
	q.mu.Unlock()
	q.wg.Wait()
	q.closeFiles()
	return err
}

func (q *Queue) closeFiles() {
	for _, s := range q.segs {
		_ = s.f.Close()
	}
	_ = q.pos.close()
	if q.lock != nil {
		_ = q.lock.Close() // releases the flock
	}
}

func (q *Queue) syncLoop() {
	defer q.wg.Done()
	t := time.NewTicker(q.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-q.done:
			return
		case <-t.C:
			q.syncNow()
		}
	}
}

func (q *Queue) syncNow() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.dirty || q.closed {
		return
	}
	if err := errors.Join(q.syncLast(), q.pos.f.Sync()); err != nil {
		q.opts.Logger.Error("fsync of the buffer failed; the data stays buffered and is written again before the next fsync",
			zap.Uint64("unsynced_bytes", q.wOff-q.synced), zap.Error(err))
		return
	}
	q.dirty = false
}

// syncLast fsyncs the written segment. After a failed fsync it first writes the unsynced range
// again from the page cache, so that the next fsync has dirty pages to write instead of
// succeeding over pages the kernel already gave up on.
func (q *Queue) syncLast() error {
	last := q.segs[len(q.segs)-1]
	for try := 0; try < 2; try++ {
		if q.resync {
			if err := q.rewriteUnsynced(last); err != nil {
				return err
			}
		}
		err := q.fsync(last.f)
		if err == nil {
			q.resync = false
			q.synced = q.wOff
			return nil
		}
		q.resync = true
		if try == 1 {
			return fmt.Errorf("diskqueue: fsync: %w", err)
		}
	}
	return nil
}

func (q *Queue) rewriteUnsynced(last *segment) error {
	from := max(q.synced, last.start)
	if from >= q.wOff {
		return nil
	}
	b := make([]byte, q.wOff-from)
	if _, err := last.f.ReadAt(b, int64(from-last.start)); err != nil {
		return fmt.Errorf("diskqueue: re-reading unsynced data: %w", err)
	}
	if _, err := last.f.WriteAt(b, int64(from-last.start)); err != nil {
		return fmt.Errorf("diskqueue: rewriting unsynced data: %w", err)
	}
	q.rewritten += int64(len(b))
	return nil
}

// cutUnsynced removes what an Append under SyncAlways wrote when it could not be made durable,
// so that its error means "not stored". The reader cannot have read it: Append holds the lock.
func (q *Queue) cutUnsynced() {
	last := q.segs[len(q.segs)-1]
	to := max(q.synced, last.start)
	if to >= q.wOff {
		return
	}
	if err := last.f.Truncate(int64(to - last.start)); err != nil {
		q.opts.Logger.Error("Cannot cut records whose fsync failed", zap.Error(err))
		return
	}
	q.wOff = to
}

func (q *Queue) drop(reason string, records, items int) {
	if q.opts.OnDrop != nil && records > 0 {
		q.opts.OnDrop(reason, records, items)
	}
}

func segmentPath(dir string, start uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", start, segmentSuffix))
}

func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("diskqueue: list %s: %w", dir, err)
	}
	var starts []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segmentSuffix)
		if !ok || e.IsDir() {
			continue
		}
		s, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("diskqueue: unexpected segment name %q in %s", e.Name(), dir)
		}
		starts = append(starts, s)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	return starts, nil
}

// lockDir takes an exclusive flock on dir/LOCK: two queues on one directory would interleave
// their writes. The kernel drops the lock when the process dies, so kill -9 leaves none behind.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("diskqueue: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("diskqueue: directory %s is in use by another queue: %w", dir, err)
	}
	return f, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// checkSpace logs what the free space under the queue means for it and returns the segment
// size to use: space is freed a segment at a time, so on a small file system segments are made
// small enough that a full disk drops an eighth of the buffer, not all of it.
func checkSpace(o Options) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(o.Dir, &st); err != nil {
		o.Logger.Warn("Cannot read the free space under the buffer", zap.String("directory", o.Dir), zap.Error(err))
		return o.SegmentSize
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	used := segmentFileBytes(o.Dir)
	room := free + used
	seg := o.SegmentSize
	if room/8 < seg {
		seg = min(seg, max(room/8, minSegmentSize))
	}
	fields := []zap.Field{zap.String("directory", o.Dir), zap.Int64("free_bytes", free),
		zap.Int64("buffer_bytes", used), zap.Int64("max_bytes", o.MaxBytes), zap.Int64("segment_size", seg)}
	if o.MaxBytes <= 0 {
		o.Logger.Info("Buffer space checked: no max_bytes, so the buffer may fill the file system; when it does, "+
			"the oldest buffered data is dropped (reason disk_full)", fields...)
	} else if room < o.MaxBytes {
		o.Logger.Warn("The file system under the buffer has less room than max_bytes: when it fills, the oldest "+
			"buffered data is dropped (reason disk_full), and appends fail once nothing older is left", fields...)
	} else {
		o.Logger.Info("Buffer space checked: max_bytes fits in the free space", fields...)
	}
	return seg
}

// minSegmentSize keeps segments from becoming so small that every batch rolls a file.
const minSegmentSize = 64 << 10

func segmentFileBytes(dir string) int64 {
	starts, err := listSegments(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, s := range starts {
		if fi, err := os.Stat(segmentPath(dir, s)); err == nil {
			n += fi.Size()
		}
	}
	return n
}
