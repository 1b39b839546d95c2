package badgerstore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Badger's file sizes. Badger maps a memtable's log at twice memTableSize
// and a value log at twice valueLogFileSize, sparse; they are smaller than
// Badger's defaults (64 MiB, 1 GiB) so that the reserve can cover them.
const (
	memTableSize     = 16 << 20
	valueLogFileSize = 64 << 20
	// valueThreshold is Badger's default: values of 1 MiB and more go to
	// the value log.
	valueThreshold = 1 << 20
)

// DefaultReserve is the free space, in bytes, that writes leave on the
// store's file system (WithReserve).
const DefaultReserve = 128 << 20

const (
	// preallocWindow is how far ahead of Badger's writes the live memtable
	// log and value log are allocated.
	preallocWindow = 4 << 20
	// entryOverhead bounds what Badger's log adds to an entry's key and
	// value (header, checksum, transaction marks).
	entryOverhead = 64
)

// space admits a transaction only while the file system keeps the reserve
// free after it, and allocates the live memtable log and value log ahead of
// Badger's writes, so that Badger never writes into a mapped page the file
// system cannot back (which kills the process with SIGBUS). Only the
// committer uses it.
type space struct {
	dir     string
	reserve int64
	log     *slog.Logger

	mem, vlog  *liveFile
	noPrealloc bool
}

// liveFile is the memtable log or value log Badger appends to.
type liveFile struct {
	path  string
	fid   int
	size  int64 // how much of it Badger maps
	est   int64 // upper bound of how far Badger has written
	alloc int64 // allocated up to here
}

func newSpace(dir string, reserve int64, log *slog.Logger) *space {
	return &space{dir: dir, reserve: reserve, log: log}
}

// noSpaceError describes a refusal.
func (sp *space) noSpaceError(free, need int64) error {
	return fmt.Errorf("%w: %s has %s free; writing %s more would cut into the %s reserve",
		statestore.ErrNoSpace, sp.dir, formatBytes(free), formatBytes(need), formatBytes(sp.reserve))
}

// admit returns an error matching statestore.ErrNoSpace when a transaction
// that appends mem bytes to the memtable log and vlog bytes to the value
// log would leave less than the reserve free, or when its pages cannot be
// allocated.
func (sp *space) admit(mem, vlog int64) error {
	free, err := freeBytes(sp.dir)
	if errors.Is(err, syscall.ENOENT) {
		// Badger's files are unlinked: nothing written now would survive.
		return fmt.Errorf("badgerstore: %s: store directory removed: %w", sp.dir, err)
	}
	if err == nil && free-mem-vlog < sp.reserve {
		return sp.noSpaceError(free, mem+vlog)
	}
	if sp.noPrealloc {
		return nil
	}
	sp.refresh()
	for _, g := range []struct {
		f *liveFile
		n int64
	}{{sp.mem, mem}, {sp.vlog, vlog}} {
		if g.f == nil {
			continue
		}
		if err := sp.grow(g.f, g.n); err != nil {
			return err
		}
	}
	return nil
}

// wrote records that a transaction admitted with these sizes committed.
func (sp *space) wrote(mem, vlog int64) {
	if sp.mem != nil {
		sp.mem.est += mem
	}
	if sp.vlog != nil {
		sp.vlog.est += vlog
	}
}

// grow makes sure f is allocated at least the window past its estimated
// end after n more bytes; it allocates two windows at a time, so that it
// calls fallocate once per window of writes.
func (sp *space) grow(f *liveFile, n int64) error {
	if f.alloc >= f.size || f.est+n+preallocWindow <= f.alloc {
		return nil
	}
	want := min(f.size, f.est+n+2*preallocWindow)
	err := fallocate(f.path, f.alloc, want-f.alloc)
	switch {
	case err == nil:
		f.alloc = want
		return nil
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: %s: allocating %s more of %s ahead of Badger's writes: %v",
			statestore.ErrNoSpace, sp.dir, formatBytes(want-f.alloc), filepath.Base(f.path), err)
	case errors.Is(err, os.ErrNotExist):
		// Badger moved on to a new file; the next admit finds it.
		sp.mem, sp.vlog = nil, nil
		return nil
	default:
		// The file system cannot preallocate: rely on the reserve alone.
		sp.noPrealloc = true
		if sp.log != nil {
			sp.log.Warn("store: files cannot be preallocated; only the free-space reserve guards the disk", logKeyDir, sp.dir, logKeyErr, err)
		}
		return nil
	}
}

// refresh finds the live files when Badger has started new ones: the next
// file's existence is checked with one stat each.
func (sp *space) refresh() {
	next := func(f *liveFile, format string) bool {
		if f == nil {
			return true
		}
		_, err := os.Stat(filepath.Join(sp.dir, fmt.Sprintf(format, f.fid+1)))
		return err == nil
	}
	if next(sp.mem, "%05d.mem") {
		sp.mem = newest(sp.dir, ".mem")
	}
	if next(sp.vlog, "%06d.vlog") {
		sp.vlog = newest(sp.dir, ".vlog")
	}
}

// newest returns the file of dir with suffix ext and the highest number.
func newest(dir, ext string) *liveFile {
	m, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
	if len(m) == 0 {
		return nil
	}
	fid := func(p string) int {
		n, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(p), ext))
		return n
	}
	sort.Slice(m, func(i, j int) bool { return fid(m[i]) < fid(m[j]) })
	p := m[len(m)-1]
	size, used := fileUsage(p)
	return &liveFile{path: p, fid: fid(p), size: size, est: used}
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
