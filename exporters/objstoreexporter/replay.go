package objstoreexporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
)

// A previous run's head (its WAL, head chunks and out-of-order WAL) is not replayed by the
// tsdb.Open that Start calls: a full 2 h head of a large shard takes minutes to replay, and the
// Collector starts its receivers only once every exporter's Start has returned, so nothing would
// be scraped meanwhile. Start moves the head aside into <directory>/replay-<unix ns>, opens a
// fresh TSDB for live appends at once, and a goroutine replays the old head, writes it out as
// blocks, moves them into the live TSDB (which ships them like any other block) and deletes the
// replay directory. Blocks from a replay may overlap the live ones in time; Thanos' compactor
// merges them.
//
// Every step survives a crash: the move aside goes through replay-<unix ns>.tmp, which the next
// Start completes; blocks are written by tsdb's own atomic compaction and moved by rename; a
// replay directory is deleted only after its blocks are in the live TSDB.

const (
	replayPrefix = "replay-"
	replayTmp    = ".tmp"
	// replayPoll is how often a finished replay looks whether the live TSDB has loaded its blocks.
	replayPoll = 200 * time.Millisecond
)

// headEntries tells the TSDB directory entries that hold the head, as opposed to blocks.
func isHeadEntry(name string) bool {
	return name == "wal" || name == "wbl" || name == "chunks_head" || strings.HasPrefix(name, "chunk_snapshot.")
}

// moveHeadAside moves the head of tsdbDir into a new replay directory under dir, first
// completing a move that a crash interrupted. It returns the replay directories to work
// through, oldest first.
func moveHeadAside(dir, tsdbDir string, now time.Time) ([]string, error) {
	dirs, tmps, err := listReplays(dir)
	if err != nil {
		return nil, err
	}
	if len(tmps) == 0 {
		has, err := walHasData(filepath.Join(tsdbDir, "wal"))
		if err != nil {
			return nil, err
		}
		if has {
			tmps = []string{filepath.Join(dir, fmt.Sprintf("%s%020d%s", replayPrefix, now.UnixNano(), replayTmp))}
		}
	}
	for _, tmp := range tmps {
		final, err := completeMove(tsdbDir, tmp)
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, final)
	}
	slices.Sort(dirs)
	return dirs, nil
}

// startHeadBound records where the live head starts: the newest in-order block's end, as
// tsdb.Open is about to compute it. Start calls it after moving the previous head aside.
func startHeadBound(dir, tsdbDir string) error {
	t, err := inOrderMaxTime(tsdbDir)
	if err != nil {
		return err
	}
	return writeTime(filepath.Join(dir, headMinValidFile), t)
}

// raiseHeadBound records the live head's new start after a cut.
func (e *objstoreExporter) raiseHeadBound() {
	t := e.db.Head().MinTime()
	if t == math.MaxInt64 {
		return
	}
	if old, err := readMinValid(e.cfg.Directory, headMinValidFile); err == nil && old >= t {
		return
	}
	if err := writeTime(filepath.Join(e.cfg.Directory, headMinValidFile), t); err != nil {
		// The next start then writes blocks for samples already cut: duplicates, which Thanos'
		// compactor merges; nothing is lost.
		e.logger.Warn("objstore exporter: recording the head's start failed", "err", err)
	}
}

// listReplays returns the finished replay directories and the ones still being moved into.
func listReplays(dir string) (dirs, tmps []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), replayPrefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if strings.HasSuffix(e.Name(), replayTmp) {
			tmps = append(tmps, p)
		} else {
			dirs = append(dirs, p)
		}
	}
	return dirs, tmps, nil
}

// walHasData tells whether a WAL directory holds anything to replay.
func walHasData(wal string) (bool, error) {
	entries, err := os.ReadDir(wal)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("list %s: %w", wal, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			return true, nil // a checkpoint
		}
		if info, err := e.Info(); err == nil && info.Size() > 0 {
			return true, nil
		}
	}
	return false, nil
}

// completeMove moves what is left of the head in tsdbDir into tmp, then renames tmp to its final
// name. Run again after a crash, it moves the rest.
func completeMove(tsdbDir, tmp string) (string, error) {
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return "", fmt.Errorf("create %s: %w", tmp, err)
	}
	if err := writeMinValid(tsdbDir, tmp); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(tsdbDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("list %s: %w", tsdbDir, err)
	}
	for _, e := range entries {
		if !isHeadEntry(e.Name()) {
			continue
		}
		if err := os.Rename(filepath.Join(tsdbDir, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
			return "", fmt.Errorf("move the head aside: %w", err)
		}
	}
	syncDir(tmp)
	syncDir(tsdbDir)
	final := strings.TrimSuffix(tmp, replayTmp)
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("move the head aside: %w", err)
	}
	syncDir(filepath.Dir(final))
	return final, nil
}

// minValidFile holds, in a replay directory, the time below which its WAL's in-order samples
// were already cut into blocks: a WAL still holds them (tsdb skips them when it replays next to
// those blocks); the replay skips them by this bound.
const minValidFile = "min-valid-time"

// headMinValidFile holds, in the exporter's directory, that bound for the live head: where tsdb
// started it (the newest in-order block's end) or the end of its last cut. Blocks that a replay
// moves in later do not raise it: the live head may hold samples older than their end.
const headMinValidFile = "head-min-valid-time"

// writeMinValid records the bound in replay directory tmp, unless a crashed move already did:
// the live head's, or without one (written by an older version) the end of the newest in-order
// block, as tsdb computes it.
func writeMinValid(tsdbDir, tmp string) error {
	path := filepath.Join(tmp, minValidFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	t, err := readMinValid(filepath.Dir(tsdbDir), headMinValidFile)
	if err != nil {
		if t, err = inOrderMaxTime(tsdbDir); err != nil {
			return err
		}
	}
	return writeTime(path, t)
}

func writeTime(path string, t int64) error {
	if err := os.WriteFile(path, []byte(strconv.FormatInt(t, 10)), 0o640); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func readMinValid(dir, name string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	t, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	return t, nil
}

// inOrderMaxTime is the newest end of the in-order blocks in tsdbDir, as tsdb.Open computes the
// head's lowest valid time (blocks cut from out-of-order samples do not count).
func inOrderMaxTime(tsdbDir string) (int64, error) {
	maxt := int64(math.MinInt64)
	entries, err := os.ReadDir(tsdbDir)
	if errors.Is(err, fs.ErrNotExist) {
		return maxt, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", tsdbDir, err)
	}
	for _, e := range entries {
		if _, err := ulid.ParseStrict(e.Name()); err != nil || !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(tsdbDir, e.Name(), "meta.json"))
		if err != nil {
			continue // not a finished block; tsdb skips it as well
		}
		var m tsdb.BlockMeta
		if err := json.Unmarshal(b, &m); err != nil {
			continue
		}
		if !m.Compaction.FromOutOfOrder() {
			maxt = max(maxt, m.MaxTime)
		}
	}
	return maxt, nil
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		f.Close()
	}
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// replayAll replays dirs one after the other, retrying one that fails until ctx ends.
func (e *objstoreExporter) replayAll(ctx context.Context, dirs []string, sizes []int64) {
	defer close(e.replayDone)
	for i, dir := range dirs {
		for {
			start := time.Now()
			blocks, err := e.replay(ctx, dir)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				e.tel.replayPending.Add(-sizes[i])
				e.logger.Info("objstore exporter: replayed a previous run's head into blocks", "dir", dir,
					"blocks", blocks, "duration", time.Since(start).String())
				break
			}
			e.logger.Warn("objstore exporter: replaying a previous run's head failed, retrying", "dir", dir, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(e.cfg.UploadRetry.InitialInterval):
			}
		}
	}
}

// replay turns the head in dir into blocks of the live TSDB and deletes dir. While the replayed
// head is open, the head API serves it next to the live TSDB.
func (e *objstoreExporter) replay(ctx context.Context, dir string) (int, error) {
	db, err := e.openReplay(dir, e.replayOptions())
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", dir, err)
	}
	db.DisableCompactions()
	e.store.attach(db)
	closeDB := func() error {
		e.store.detach()
		return db.Close()
	}
	minValid, err := readMinValid(dir, minValidFile)
	if err != nil {
		return 0, errors.Join(err, closeDB())
	}
	if err := persistHead(ctx, db, minValid, e.cfg.BlockDuration.Milliseconds()); err != nil {
		return 0, errors.Join(err, closeDB())
	}
	moved, err := moveBlocks(dir, e.tsdbDir())
	if err != nil {
		return 0, errors.Join(err, closeDB())
	}
	e.tel.blocksCut.Add(context.WithoutCancel(ctx), int64(len(moved)))
	// Until the live TSDB has loaded the blocks (at its next block reload), queries read them
	// through the replay's TSDB.
	if err := e.waitLoaded(ctx, moved); err != nil {
		return 0, errors.Join(err, closeDB())
	}
	if err := closeDB(); err != nil {
		return 0, fmt.Errorf("close %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return 0, fmt.Errorf("delete %s: %w", dir, err)
	}
	select {
	case e.kick <- struct{}{}: // ship them now
	default:
	}
	return len(moved), nil
}

// replayOptions are the live TSDB's options, minus retention: nothing may be deleted from a
// replay directory.
func (e *objstoreExporter) replayOptions() *tsdb.Options {
	o := e.tsdbOptions(nil)
	o.BlocksToDelete = func([]*tsdb.Block) map[ulidT]struct{} { return nil }
	o.RetentionDuration = 0
	o.MaxBytes = 0
	o.BlockReloadInterval = time.Hour
	return o
}

// persistHead writes db's head from minValid on out as blocks, one per block range, then its
// out-of-order head.
func persistHead(ctx context.Context, db *tsdb.DB, minValid, rangeMs int64) error {
	h := db.Head()
	// Taken once: truncating the head raises its max time to its new min time.
	maxt := h.MaxTime()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		mint := max(h.MinTime(), minValid)
		if mint == math.MaxInt64 || mint > maxt {
			break
		}
		end := mint - ((mint%rangeMs)+rangeMs)%rangeMs + rangeMs
		if err := db.CompactHead(tsdb.NewRangeHead(h, mint, min(end-1, maxt))); err != nil {
			return fmt.Errorf("write the replayed head as a block: %w", err)
		}
		if h.MinTime() <= mint {
			return fmt.Errorf("the replayed head did not shrink past %d", mint)
		}
	}
	if err := db.CompactOOOHead(ctx); err != nil {
		return fmt.Errorf("write the replayed out-of-order head as blocks: %w", err)
	}
	return nil
}

// moveBlocks moves the blocks in dir into tsdbDir by rename, each at once.
func moveBlocks(dir, tsdbDir string) ([]ulidT, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var moved []ulidT
	for _, ent := range entries {
		id, err := ulid.ParseStrict(ent.Name())
		if err != nil || !ent.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, ent.Name(), "meta.json")); err != nil {
			continue // not a finished block
		}
		if err := os.Rename(filepath.Join(dir, ent.Name()), filepath.Join(tsdbDir, ent.Name())); err != nil {
			return moved, fmt.Errorf("move block %s: %w", ent.Name(), err)
		}
		moved = append(moved, id)
	}
	syncDir(dir)
	syncDir(tsdbDir)
	return moved, nil
}

// waitLoaded waits until the live TSDB has loaded the blocks (or its retention has already
// deleted them again).
func (e *objstoreExporter) waitLoaded(ctx context.Context, ids []ulidT) error {
	for {
		loaded := map[ulidT]bool{}
		for _, b := range e.store.db.Blocks() {
			loaded[b.Meta().ULID] = true
		}
		pending := slices.ContainsFunc(ids, func(id ulidT) bool {
			_, err := os.Stat(filepath.Join(e.tsdbDir(), id.String()))
			return !loaded[id] && err == nil
		})
		if !pending {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(replayPoll):
		}
	}
}
