package badgerstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Report is what Check or Repair found in a store directory and, for
// Repair, what it did and what that cost.
type Report struct {
	// Dir is the store directory.
	Dir string
	// Free is the free space of its file system (-1 when unknown).
	Free int64
	// Problems lists the damage found, one line each, naming the file and
	// the offset.
	Problems []string
	// Unrepairable is true when a problem is one Repair cannot fix (a
	// damaged table or MANIFEST): restore the directory from a backup.
	Unrepairable bool
	// Repaired lists what Repair changed.
	Repaired []string
	// Lost lists the stored records Repair could not keep, as runs, node
	// results, checkpoints, plugin state or dead letters. Empty after a
	// repair when nothing acknowledged was lost.
	Lost []string
	// Unreadable lists records whose value cannot be read back (found by
	// Check on an undamaged directory).
	Unreadable []string
	// Notes says what was not checked, and why.
	Notes []string
}

// OK reports whether nothing is wrong.
func (r Report) OK() bool {
	return len(r.Problems) == 0 && len(r.Unreadable) == 0
}

// logDamage is a log entry that fails its checks and is followed by data.
type logDamage struct {
	path       string
	bad, size  int64
	badKey     string // the damaged entry's record, when its header is readable
	after      int    // valid entries found after it
	afterKeys  []string
	dataAfterE int64 // offset of the first non-zero byte after the entry
	dataEnd    int64 // offset after the last non-zero byte
}

// Check inspects the store in dir without changing it: every table's block
// checksums, every memtable log and value log entry by entry, and, when
// those are sound and the memtable was flushed (a clean close), every
// stored value through Badger opened read-only, and every index entry of
// runs against its run record (each disagreement is a problem prefixed
// "index:"). It returns an error wrapping ErrInUse when the store is open elsewhere.
func Check(dir string) (Report, error) {
	return inspect(dir, false)
}

// Repair makes a damaged directory open again. A log (memtable log or value
// log) whose damaged entry is followed by more data is cut at that entry:
// the entry and everything after it are dropped, which is what Badger does
// with a torn tail. Badger appends to the value log before it writes the
// memtable log entry that points there, and a write is acknowledged only
// after both are synced, so value-log bytes that no stored record points to
// were never acknowledged and dropping them loses nothing; Repair then reads
// every stored value back and lists in Lost each record whose value was in
// the dropped bytes (and deletes it, with a lost run's index entries, so
// the store answers "not found" for it), and each record of the memtable
// log found after its damage. When an index entry disagrees with its run
// record, Repair sets the layout marker back to 1, so the next Open
// rebuilds the status index. A damaged table or MANIFEST is reported, not
// repaired.
func Repair(dir string) (Report, error) {
	return inspect(dir, true)
}

func inspect(dir string, repair bool) (rep Report, err error) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	rep = Report{Dir: dir, Free: -1}
	fi, err := os.Stat(dir)
	if err != nil {
		return rep, fmt.Errorf("badgerstore: no store at %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return rep, fmt.Errorf("%w: %s is not a directory", ErrNotWritable, dir)
	}
	if free, err := freeBytes(dir); err == nil {
		rep.Free = free
	}
	unlock, err := lockDir(filepath.Join(dir, lockFileName))
	if errors.Is(err, errLocked) {
		return rep, fmt.Errorf("%w: %s is open in another process or store", ErrInUse, dir)
	}
	if err != nil {
		return rep, fmt.Errorf("%w: %s: lock: %w", ErrNotWritable, dir, err)
	}
	defer unlock()

	if _, err := os.Stat(filepath.Join(dir, badger.ManifestFilename)); err == nil {
		if _, known := manifestTables(dir); !known {
			rep.Problems = append(rep.Problems, "MANIFEST cannot be read")
			rep.Unrepairable = true
		}
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	sort.Strings(tables)
	live, known := manifestTables(dir)
	for _, p := range tables {
		c, ok := live[tableID(p)]
		if known && !ok {
			continue
		}
		if err := verifyTable(p, c, known); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("table %s fails its checksum check: %v", filepath.Base(p), err))
			rep.Unrepairable = true
		}
	}
	var logs []string
	for _, pat := range []string{"*.mem", "*.vlog"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		logs = append(logs, m...)
	}
	sort.Strings(logs)
	var damaged []logDamage
	for _, p := range logs {
		d, err := findLogDamage(p)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("log %s cannot be read: %v", filepath.Base(p), err))
			rep.Unrepairable = true
			continue
		}
		if d == nil {
			continue
		}
		damaged = append(damaged, *d)
		msg := fmt.Sprintf("log %s: invalid entry at offset %d is followed by data at offset %d, up to offset %d (Badger would drop all of it)",
			filepath.Base(p), d.bad, d.dataAfterE, d.dataEnd)
		if d.after > 0 {
			msg += fmt.Sprintf("; %d valid entries follow it", d.after)
		}
		rep.Problems = append(rep.Problems, msg)
	}
	if rep.Unrepairable || (len(damaged) > 0 && !repair) {
		return rep, nil
	}
	for _, d := range damaged {
		if err := cutLog(d.path, d.bad, d.size); err != nil {
			return rep, fmt.Errorf("%w: %s: cut %s at offset %d: %w", ErrNotWritable, dir, filepath.Base(d.path), d.bad, err)
		}
		rep.Repaired = append(rep.Repaired, fmt.Sprintf("log %s: dropped everything from offset %d (the invalid entry, and data up to offset %d)", filepath.Base(d.path), d.bad, d.dataEnd))
		if strings.HasSuffix(d.path, ".mem") {
			if d.badKey != "" {
				rep.Lost = append(rep.Lost, d.badKey+" (its entry in "+filepath.Base(d.path)+" was damaged)")
			}
			for _, k := range d.afterKeys {
				rep.Lost = append(rep.Lost, k+" (logged in "+filepath.Base(d.path)+" after the damage)")
			}
		}
	}
	if !repair && hasMemtableLogs(dir) {
		// Badger opens read-only only a store whose memtables were
		// flushed, which a crash does not leave behind.
		rep.Notes = append(rep.Notes, "values not read back: the memtable was not flushed (the store was not closed cleanly); `bulkhead store repair` reads them")
		return rep, nil
	}
	unreadable, lost, index, tasks, err := readBack(dir, repair)
	for _, p := range index {
		rep.Problems = append(rep.Problems, "index: "+p)
	}
	if len(index) > 0 && repair {
		rep.Repaired = append(rep.Repaired, "status index marked for a rebuild at the next open")
	}
	for _, p := range tasks {
		rep.Problems = append(rep.Problems, "task: "+p)
	}
	if len(tasks) > 0 && repair && err == nil {
		rep.Repaired = append(rep.Repaired, fmt.Sprintf("removed the %d damaged task entries (a run left without its tasks is queued again by the engine)", len(tasks)))
	}
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
		rep.Unrepairable = true
		return rep, nil
	}
	if repair {
		why := " (its value cannot be read; removed)"
		if len(damaged) > 0 {
			why = " (its value was in the dropped bytes; removed)"
		}
		for _, l := range lost {
			rep.Lost = append(rep.Lost, l+why)
		}
	} else {
		rep.Unreadable = unreadable
	}
	return rep, nil
}

// hasMemtableLogs reports whether dir holds a memtable log with data.
func hasMemtableLogs(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	for _, p := range m {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
			return true
		}
	}
	return false
}

// findLogDamage returns the first entry of a log that fails its checks when
// non-zero bytes follow it, nil for a sound log or a torn tail.
func findLogDamage(path string) (*logDamage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size <= logHeaderSize {
		return nil, nil
	}
	off, end := walkLog(f, logHeaderSize, size, nil)
	if zeroFrom(f, off, off+end, size) == nil {
		return nil, nil
	}
	d := &logDamage{path: path, bad: off, size: size, dataAfterE: off + end}
	if k, _, ok := entryKey(f, off, size); ok && !bytes.HasPrefix(k, badgerPrefix) {
		d.badKey = describeLogKey(k)
	}
	// Where the data after the entry begins and ends, for the report.
	d.dataAfterE, d.dataEnd = dataExtent(f, off+end, size)
	// The valid entries after the damage, found by looking for the next
	// offset where an entry passes its checksum.
	var keys []string
	for pos := off + 1; pos < d.dataEnd; {
		start, ok := resync(f, pos, min(d.dataEnd, pos+resyncWindow), size)
		if !ok {
			break
		}
		stop, _ := walkLog(f, start, size, func(k []byte) {
			if !bytes.HasPrefix(k, badgerPrefix) { // Badger's transaction marks hold no record
				keys = append(keys, describeLogKey(k))
			}
		})
		pos = stop + 1
	}
	d.after = len(keys)
	d.afterKeys = dedupe(keys)
	return d, nil
}

var badgerPrefix = []byte("!badger!")

// resyncWindow bounds how far past damage resync looks for the next entry.
const resyncWindow = 1 << 20

// resync returns the first offset in [from, to) where a valid entry starts.
func resync(f *os.File, from, to, size int64) (int64, bool) {
	buf := make([]byte, min(size-from, to-from+2<<20))
	n, _ := f.ReadAt(buf, from)
	buf = buf[:n]
	for o := int64(0); from+o < to && o < int64(len(buf)); o++ {
		if validEntryAt(f, buf, o, from, size) {
			return from + o, true
		}
	}
	return 0, false
}

// validEntryAt reports whether an entry that passes its checksum starts at
// buf[o:] (buf holds the file from offset base on).
func validEntryAt(f *os.File, buf []byte, o, base, size int64) bool {
	hdr := buf[o:min(int64(len(buf)), o+maxEntryHeader)]
	if len(hdr) < 5 {
		return false
	}
	p := 2
	klen, c1 := binary.Uvarint(hdr[p:])
	if c1 <= 0 || klen == 0 || klen > maxKeyLen {
		return false
	}
	p += c1
	vlen, c2 := binary.Uvarint(hdr[p:])
	if c2 <= 0 {
		return false
	}
	p += c2
	_, c3 := binary.Uvarint(hdr[p:])
	if c3 <= 0 {
		return false
	}
	p += c3
	total := int64(p) + int64(klen) + int64(vlen) + 4
	if base+o+total > size {
		return false
	}
	e := buf[o:min(int64(len(buf)), o+total)]
	if int64(len(e)) < total {
		e = make([]byte, total)
		if n, _ := f.ReadAt(e, base+o); int64(n) < total {
			return false
		}
	}
	return crc32.Checksum(e[:total-4], castagnoli) == binary.BigEndian.Uint32(e[total-4:])
}

// walkLog reads valid entries from off and returns the offset of the first
// that fails its checks and how far that one claims to reach; keyFn sees
// each valid entry's key.
func walkLog(f *os.File, off, size int64, keyFn func([]byte)) (int64, int64) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, size-off), 1<<20)
	var buf []byte
	for {
		n, ok := readEntry(r, &buf, size-off)
		if !ok {
			return off, n
		}
		if keyFn != nil {
			if k, ok := keyOf(buf[:n]); ok {
				keyFn(k)
			}
		}
		off += n
	}
}

// keyOf returns the key of a complete entry read by readEntry.
func keyOf(b []byte) ([]byte, bool) {
	n := 2
	klen, c1 := binary.Uvarint(b[n:])
	if c1 <= 0 {
		return nil, false
	}
	n += c1
	_, c2 := binary.Uvarint(b[n:])
	if c2 <= 0 {
		return nil, false
	}
	n += c2
	_, c3 := binary.Uvarint(b[n:])
	if c3 <= 0 {
		return nil, false
	}
	n += c3
	if int64(len(b)) < int64(n)+int64(klen) {
		return nil, false
	}
	return b[n : n+int(klen)], true
}

// entryKey reads the key of the entry at off when its header and key are
// readable, and the entry's claimed length (0 when it overruns the file).
func entryKey(f *os.File, off, size int64) ([]byte, int64, bool) {
	hdr := make([]byte, maxEntryHeader)
	n, _ := f.ReadAt(hdr, off)
	hdr = hdr[:n]
	if len(hdr) < 5 {
		return nil, 0, false
	}
	p := 2
	klen, c1 := binary.Uvarint(hdr[p:])
	if c1 <= 0 || klen == 0 || klen > maxKeyLen {
		return nil, 0, false
	}
	p += c1
	vlen, c2 := binary.Uvarint(hdr[p:])
	if c2 <= 0 {
		return nil, 0, false
	}
	p += c2
	_, c3 := binary.Uvarint(hdr[p:])
	if c3 <= 0 {
		return nil, 0, false
	}
	p += c3
	k := make([]byte, klen)
	if m, _ := f.ReadAt(k, off+int64(p)); m != len(k) {
		return nil, 0, false
	}
	total := int64(p) + int64(klen) + int64(vlen) + 4
	if off+total > size {
		total = 0
	}
	return k, total, true
}

// cutLog drops [from, size) of a log, keeping its size: the dropped part
// reads as zeros, which Open and Badger treat as the end of the log.
func cutLog(path string, from, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(from); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readBack opens the store with Badger (read-only unless writable) and
// reads every stored value, returning the records whose value cannot be
// read, with and without the reason; when writable, it deletes them. It
// then compares the run indexes with the run records (checkIndexes) and
// returns the disagreements; when writable and there are some, it moves
// the layout marker back to 1, so the next Open rebuilds the status index.
// Last it checks the task queue (checkTasks) and, when writable, deletes
// the damaged task entries.
func readBack(dir string, writable bool) (bad, records, index, tasks []string, err error) {
	if err := removeEmptyLogs(dir); err != nil && writable {
		return nil, nil, nil, nil, err
	}
	bo := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithReadOnly(!writable).
		WithVerifyValueChecksum(true).
		WithMetricsEnabled(false).
		WithMemTableSize(memTableSize).
		WithValueLogFileSize(valueLogFileSize).
		WithValueThreshold(valueThreshold)
	db, err := openBadger(bo)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("open with Badger: %v", err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close with Badger: %v", cerr)
		}
	}()
	var badKeys [][]byte
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if verr := readValue(item); verr != nil {
				badKeys = append(badKeys, item.KeyCopy(nil))
				records = append(records, describeKey(item.KeyCopy(nil)))
				bad = append(bad, describeKey(item.KeyCopy(nil))+": "+verr.Error())
			}
		}
		return nil
	})
	if err == nil && writable && len(badKeys) > 0 {
		err = dropRecords(db, badKeys)
	}
	if err != nil {
		return bad, records, nil, nil, err
	}
	var taskKeys [][]byte
	_ = db.View(func(txn *badger.Txn) error {
		index = checkIndexes(txn)
		tasks, taskKeys = checkTasks(txn)
		return nil
	})
	if writable && len(taskKeys) > 0 {
		if err := db.Update(func(txn *badger.Txn) error {
			for _, k := range taskKeys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return bad, records, index, tasks, fmt.Errorf("remove damaged tasks: %v", err)
		}
	}
	if writable && len(index) > 0 {
		err = db.Update(func(txn *badger.Txn) error {
			v, err := getValue(txn, keyFormat)
			if errors.Is(err, statestore.ErrNotFound) || (err == nil && string(v) != formatVersion) {
				return nil
			}
			if err != nil {
				return err
			}
			return txn.Set(keyFormat, []byte(formatUnindexed))
		})
	}
	return bad, records, index, tasks, err
}

// dropRecords deletes records whose value is lost, and the index entries
// of lost runs, so that the store answers "not found" for them.
func dropRecords(db *badger.DB, keys [][]byte) error {
	runs := map[string]bool{}
	for _, k := range keys {
		if k[0] == pRun {
			runs[string(k[1:])] = true
		}
	}
	return db.Update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		if len(runs) == 0 {
			return nil
		}
		for _, p := range []byte{pCreated, pUnfinished, pFinished} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{p}})
			var idx [][]byte
			for it.Rewind(); it.Valid(); it.Next() {
				if k := it.Item().Key(); len(k) > 9 && runs[string(k[9:])] {
					idx = append(idx, it.Item().KeyCopy(nil))
				}
			}
			it.Close()
			for _, k := range idx {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pStatus}})
		var idx [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			if _, _, id, ok := splitStatusKey(it.Item().Key()); ok && runs[id] {
				idx = append(idx, it.Item().KeyCopy(nil))
			}
		}
		it.Close()
		for _, k := range idx {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// readValue reads an item's value, turning Badger's panics on bad value
// pointers into errors. Badger logs a value it cannot read from the value
// log and returns it empty, so a value much shorter than its pointer says
// (ValueSize estimates the header of a value-log entry) is an error too.
func readValue(item *badger.Item) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	want := item.ValueSize()
	return item.Value(func(v []byte) error {
		if int64(len(v)) < want-maxEntryHeader {
			return fmt.Errorf("value unreadable: %d of %d bytes", len(v), want)
		}
		return nil
	})
}

// describeLogKey names the record of a key read from a log, which ends in
// Badger's 8-byte version.
func describeLogKey(k []byte) string {
	if len(k) > 8 {
		k = k[:len(k)-8]
	}
	return describeKey(k)
}

// describeKey names the record a key belongs to.
func describeKey(k []byte) string {
	if len(k) == 0 {
		return "an empty key"
	}
	s := string(k)
	if strings.HasPrefix(s, "!badger!") {
		return "Badger's own entry " + strconv.Quote(s)
	}
	body := s[1:]
	p := strings.Split(body, "\x00")
	switch s[0] {
	case pRun:
		return "run " + strconv.Quote(body)
	case pResult, pAttempt, pCPHead:
		what := map[byte]string{pResult: "result", pAttempt: "attempt record", pCPHead: "newest checkpoint number"}[s[0]]
		if len(p) == 2 {
			return fmt.Sprintf("%s of node %q of run %q", what, p[1], p[0])
		}
	case pCheckpoint:
		if len(p) >= 3 {
			return fmt.Sprintf("checkpoint of node %q of run %q", p[1], p[0])
		}
	case pState:
		if len(p) >= 2 {
			return fmt.Sprintf("plugin state %q of plugin %q", p[1], p[0])
		}
	case pDead:
		return "dead letter " + strconv.Quote(body)
	case pDeadByRun:
		return "dead-letter index of run " + strconv.Quote(p[0])
	case pCreated, pUnfinished, pFinished:
		if len(s) > 9 {
			return "run index entry of run " + strconv.Quote(s[9:])
		}
	case pTask:
		if len(p) == 2 {
			return fmt.Sprintf("task of node %q of run %q", p[1], p[0])
		}
	case pOrder:
		if len(k) == 9 {
			return fmt.Sprintf("task order entry %d", binary.BigEndian.Uint64(k[1:]))
		}
	case pStatus:
		if st, _, id, ok := splitStatusKey(k); ok {
			return fmt.Sprintf("status index entry (%s) of run %q", st, id)
		}
	}
	return "key " + strconv.Quote(s)
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// dataExtent returns the offsets of the first non-zero byte of f in
// [from, size) and just after the last one, skipping holes.
func dataExtent(f *os.File, from, size int64) (first, end int64) {
	first, end = -1, from
	buf := make([]byte, zeroCheckBuffer)
	for off := from; off < size; {
		data, err := seekData(f, off)
		if err != nil || data >= size {
			break
		}
		n, _ := f.ReadAt(buf[:min(int64(len(buf)), size-data)], data)
		if n == 0 {
			break
		}
		if i := firstNonZero(buf[:n]); i >= 0 {
			if first < 0 {
				first = data + int64(i)
			}
			for j := n - 1; j >= 0; j-- {
				if buf[j] != 0 {
					end = data + int64(j) + 1
					break
				}
			}
		}
		off = data + int64(n)
	}
	return first, end
}
