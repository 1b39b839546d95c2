package badgerstore

import (
	"bufio"
	"io"
	"os"
	"testing"
)

// logEnd returns the offset just after the last valid entry of a log.
func logEnd(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	r := bufio.NewReader(io.NewSectionReader(f, logHeaderSize, fi.Size()-logHeaderSize))
	off := int64(logHeaderSize)
	var buf []byte
	for {
		n, ok := readEntry(r, &buf, fi.Size()-off)
		if !ok {
			return off
		}
		off += n
	}
}

// TearLastWrite appends the first half of a made-up entry after the last
// valid entry of a log, as a crash in the middle of a write leaves it.
func TearLastWrite(t *testing.T, path string) {
	t.Helper()
	end := logEnd(t, path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// meta, user meta, key length 40, value length 200, no expiry, then 16 of
	// the 40 key bytes.
	partial := append([]byte{0x40, 0, 40, 0xc8, 0x01, 0}, []byte("key-bytes-of-a-t")...)
	if _, err := f.WriteAt(partial, end); err != nil {
		t.Fatal(err)
	}
}

// LogEnd is logEnd for the external tests.
func LogEnd(t *testing.T, path string) int64 { return logEnd(t, path) }

// QueueHeld returns how many tasks the queue holds in memory.
func QueueHeld(s *Store) int {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	return len(s.q.tasks)
}
