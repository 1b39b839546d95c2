package badgerstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	badger "github.com/dgraph-io/badger/v4"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	badgeropts "github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// checkFiles looks, before Badger opens dir, for damage Badger would not
// report: it reads a table whose blocks fail their checksums as empty (or
// panics on it in a goroutine of its own), and it truncates a log (memtable
// write-ahead log or value log) at the first entry whose checksum fails,
// dropping every entry after it. A crash can only tear the last write, so
// checkFiles accepts a bad entry at the end of a log and reports one that is
// followed by more data.
func checkFiles(dir string) error {
	if err := removeEmptyLogs(dir); err != nil {
		return err
	}
	tables, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, dir, err)
	}
	sort.Strings(tables)
	live, known := manifestTables(dir)
	for _, p := range tables {
		c, ok := live[tableID(p)]
		if known && !ok {
			// Not in the MANIFEST: a table a killed flush or compaction
			// was still writing. Badger deletes it at open.
			continue
		}
		if err := verifyTable(p, c, known); err != nil {
			return fmt.Errorf("%w: %s: table %s fails its checksum check: %v", ErrCorrupt, dir, filepath.Base(p), err)
		}
	}
	var logs []string
	for _, pat := range []string{"*.mem", "*.vlog"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, dir, err)
		}
		logs = append(logs, m...)
	}
	sort.Strings(logs)
	for _, p := range logs {
		if err := scrubTornTail(p, isLastLog(p, logs)); err != nil {
			return fmt.Errorf("%w: %s: log %s: %v", ErrCorrupt, dir, filepath.Base(p), err)
		}
		if err := verifyLog(p); err != nil {
			return fmt.Errorf("%w: %s: log %s: %v", ErrCorrupt, dir, filepath.Base(p), err)
		}
	}
	return nil
}

// verifyTable checks every block checksum of one table file, whose blocks
// are compressed with c (the MANIFEST records it per table: stores written
// before tables were left uncompressed have Snappy tables). When the
// MANIFEST could not be read (known false) either compression passes.
func verifyTable(path string, c badgeropts.CompressionType, known bool) error {
	if known {
		return verifyTableAs(path, c)
	}
	err := verifyTableAs(path, badgeropts.None)
	if err != nil && verifyTableAs(path, badgeropts.Snappy) == nil {
		return nil
	}
	return err
}

func verifyTableAs(path string, c badgeropts.CompressionType) (err error) {
	var mf *z.MmapFile
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable (%v)", r)
		}
	}()
	mf, err = z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	t, err := table.OpenTable(mf, table.Options{
		ReadOnly:    true,
		BlockSize:   4 << 10,
		ChkMode:     badgeropts.OnTableRead,
		Compression: c,
	})
	if err != nil {
		return err
	}
	return t.MmapFile.Close(-1)
}

// Log entry layout shared by Badger's memtable WAL and value log: a 20-byte
// file header, then entries of meta, user meta, uvarint key length, uvarint
// value length, uvarint expiry, key, value and a big-endian CRC-32C of all
// that.
const (
	logHeaderSize   = 20
	maxEntryHeader  = 22
	maxKeyLen       = 1 << 16
	zeroCheckBuffer = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// verifyLog finds the first entry of a log that does not check out and
// reports damage when non-zero bytes follow that entry.
func verifyLog(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	off, end, size, err := firstInvalidEntry(f)
	if err != nil || size <= logHeaderSize {
		return err
	}
	return zeroFrom(f, off, off+end, size)
}

// firstInvalidEntry returns the offset of the first entry of the log f
// that does not check out (the entry after the last, when every entry
// does), how far that entry claims to reach, and the file's size.
func firstInvalidEntry(f *os.File) (off, end, size int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, 0, err
	}
	size = fi.Size()
	if size <= logHeaderSize {
		return size, 0, size, nil
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, logHeaderSize, size-logHeaderSize), 1<<20)
	off = int64(logHeaderSize)
	var buf []byte
	for {
		n, ok := readEntry(r, &buf, size-off)
		if !ok {
			return off, n, size, nil
		}
		off += n
	}
}

// readEntry reads one entry. It returns its length and whether it is
// valid; for an invalid entry it returns how far the entry claims to reach
// (or the longest possible header when even that cannot be read).
func readEntry(r *bufio.Reader, buf *[]byte, left int64) (int64, bool) {
	hdr, _ := r.Peek(maxEntryHeader)
	if len(hdr) < 5 {
		return int64(len(hdr)), false
	}
	n := 2
	klen, c1 := binary.Uvarint(hdr[n:])
	n += max(c1, 0)
	vlen, c2 := binary.Uvarint(hdr[n:])
	n += max(c2, 0)
	_, c3 := binary.Uvarint(hdr[n:])
	n += max(c3, 0)
	if c1 <= 0 || c2 <= 0 || c3 <= 0 || klen > maxKeyLen {
		return maxEntryHeader, false
	}
	total := int64(n) + int64(klen) + int64(vlen) + 4
	if total > left {
		return maxEntryHeader, false
	}
	if int64(cap(*buf)) < total {
		*buf = make([]byte, total)
	}
	b := (*buf)[:total]
	if _, err := io.ReadFull(r, b); err != nil {
		return maxEntryHeader, false
	}
	body := b[:total-4]
	if klen == 0 || crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[total-4:]) {
		return total, false
	}
	return total, true
}

// scrubTornTail zeroes the bytes of a write a crash cut off at the end of
// a log. Badger ignores that entry and writes its next entries over it;
// without the zeros, a later crash that cut off one of those entries,
// shorter than the torn one, would leave the torn entry's remaining bytes
// behind it, which looks like data after damage.
//
// A torn write is the last entry's bytes followed by zeros, or, in the log
// Badger was writing (last), an entry whose first bytes are still zero
// followed by some of its later bytes: a large copy stores its middle
// before its head (see headMissing), so a process killed during it leaves
// the middle behind a missing header. Such a tail, from the missing header
// to the end of the file, holds no other entry: Badger writes one entry at
// a time. A log whose invalid entry is followed by data in any other way
// is left as it is, for verifyLog to report.
func scrubTornTail(path string, last bool) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	off, end, size, err := firstInvalidEntry(f)
	if err != nil || size <= logHeaderSize {
		return err
	}
	stop := min(off+end, size)
	if zeroFrom(f, off, stop, size) != nil {
		if !last || !headMissing(f, off) {
			return nil // data after the entry: damage, not a torn tail
		}
		stop = size
	}
	return zeroRange(f, off, stop)
}

// headMissing reports whether the entry at off has no header yet. A large
// copy stores its first 32 bytes last, after the 32-byte aligned blocks
// that follow them; Badger's logs are mapped at page boundaries, so a copy
// cut short leaves zeros from off to the first aligned offset past it, and
// the bytes stored from there on start with the rest of the header and the
// key, which are not all zero: the first non-zero byte lies within 64
// bytes of off.
func headMissing(f *os.File, off int64) bool {
	var b [64]byte
	got, _ := f.ReadAt(b[:], off)
	i := firstNonZero(b[:got])
	return i >= 32-int(off&31)
}

// zeroRange writes zeros over the non-zero bytes of f in [from, to) and
// syncs f when it wrote any. Holes are skipped.
func zeroRange(f *os.File, from, to int64) error {
	buf := make([]byte, zeroCheckBuffer)
	wrote := false
	for off := from; off < to; {
		data, err := seekData(f, off)
		if err != nil || data >= to {
			break
		}
		off = data
		n, err := f.ReadAt(buf[:min(int64(len(buf)), to-off)], off)
		if n > 0 && firstNonZero(buf[:n]) >= 0 {
			clear(buf[:n])
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				return err
			}
			wrote = true
		}
		if n == 0 || (err != nil && !errors.Is(err, io.EOF)) {
			break
		}
		off += int64(n)
	}
	if wrote {
		return f.Sync()
	}
	return nil
}

// isLastLog reports whether p is the log of its kind (memtable or value
// log) with the highest file number: the one Badger was writing.
func isLastLog(p string, logs []string) bool {
	ext := filepath.Ext(p)
	id := func(q string) uint64 {
		n, _ := strconv.ParseUint(strings.TrimSuffix(filepath.Base(q), filepath.Ext(q)), 10, 64)
		return n
	}
	for _, q := range logs {
		if filepath.Ext(q) == ext && id(q) > id(p) {
			return false
		}
	}
	return true
}

// zeroFrom returns an error when f holds a non-zero byte in [from, size).
// Holes of a sparse file are skipped without reading them.
func zeroFrom(f *os.File, bad, from, size int64) error {
	buf := make([]byte, zeroCheckBuffer)
	for off := from; off < size; {
		data, err := seekData(f, off)
		if err != nil || data >= size {
			return nil //nolint:nilerr // no data after off: only holes remain
		}
		off = data
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if i := firstNonZero(buf[:n]); i >= 0 {
			return fmt.Errorf("invalid entry at offset %d is followed by data at offset %d (Badger would drop everything after it)", bad, off+int64(i))
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if n == 0 {
			return nil
		}
		off += int64(n)
	}
	return nil
}

func firstNonZero(b []byte) int {
	var zero [4096]byte
	for i := 0; i < len(b); i += len(zero) {
		chunk := b[i:min(i+len(zero), len(b))]
		if !bytes.Equal(chunk, zero[:len(chunk)]) {
			for j, c := range chunk {
				if c != 0 {
					return i + j
				}
			}
		}
	}
	return -1
}

// removeEmptyLogs deletes memtable and value logs of zero bytes. Badger
// creates a log file and then sizes it; a process killed between the two
// leaves an empty file, which Badger 4.9 then refuses to open ("while
// opening fid: N err: Create a new file" for a memtable, "Open existing
// file: … Create a new file" for a value log), so one SIGKILL at the wrong
// moment would make the store unusable. An empty file holds no entry (not
// even the log header), so nothing can point into it and removing it loses
// nothing.
func removeEmptyLogs(dir string) error {
	var logs []string
	for _, pat := range []string{"*.mem", "*.vlog"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, dir, err)
		}
		logs = append(logs, m...)
	}
	for _, p := range logs {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() != 0 {
			continue
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("%w: %s: remove empty log %s: %w", ErrNotWritable, dir, filepath.Base(p), err)
		}
	}
	return nil
}

// manifestTables returns the IDs of the tables the MANIFEST references with
// the compression of each, and whether it could be read (if not, every
// table is checked and Badger reports the MANIFEST itself).
func manifestTables(dir string) (map[uint64]badgeropts.CompressionType, bool) {
	f, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	m, _, err := badger.ReplayManifestFile(f, 0, badger.DefaultOptions(dir))
	if err != nil {
		return nil, false
	}
	ids := make(map[uint64]badgeropts.CompressionType, len(m.Tables))
	for id, t := range m.Tables {
		ids[id] = t.Compression
	}
	return ids, true
}

// tableID parses a table file name such as 000125.sst.
func tableID(path string) uint64 {
	id, _ := strconv.ParseUint(strings.TrimSuffix(filepath.Base(path), ".sst"), 10, 64)
	return id
}
