package badgerstore

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// logEntry encodes one entry as Badger's logs hold it.
func logEntry(key, value string) []byte {
	b := []byte{0, 0}
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = binary.AppendUvarint(b, uint64(len(value)))
	b = binary.AppendUvarint(b, 0)
	b = append(b, key...)
	b = append(b, value...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// A process killed while it copies a large entry into the log leaves the
// entry's middle stored and its head (the header) still zero. In the log
// Badger was writing that is a torn last write: the store opens and the
// torn bytes are zeroed. The same bytes in an older log, which no write
// reaches any more, are damage.
func TestCheck_TornWriteWithoutHeader(t *testing.T) {
	dir := t.TempDir()
	good := logEntry("o\x00\x00\x00\x01key", strings.Repeat("v", 300))
	// The head of the torn entry is zero up to the next 32-byte aligned
	// offset; part of its middle is stored from there on.
	image := append(make([]byte, logHeaderSize), good...)
	gap := 32 - len(image)%32
	torn := append(make([]byte, gap), []byte(strings.Repeat("middle-of-a-value", 20))...)
	image = append(image, torn...)
	image = append(image, make([]byte, 4096)...)
	older := filepath.Join(dir, "000001.vlog")
	newest := filepath.Join(dir, "000002.vlog")
	for _, p := range []string{older, newest} {
		if err := os.WriteFile(p, image, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logs := []string{older, newest}
	if isLastLog(older, logs) || !isLastLog(newest, logs) {
		t.Fatal("isLastLog does not pick the highest file number")
	}

	if err := scrubTornTail(newest, true); err != nil {
		t.Fatal(err)
	}
	if err := verifyLog(newest); err != nil {
		t.Fatalf("newest log after scrubbing: %v", err)
	}
	b, _ := os.ReadFile(newest)
	end := logHeaderSize + len(good)
	if string(b[:end]) != string(image[:end]) {
		t.Fatal("scrubbing changed the valid entry")
	}
	if i := firstNonZero(b[end:]); i >= 0 {
		t.Fatalf("torn bytes left at offset %d", end+i)
	}

	if err := scrubTornTail(older, false); err != nil {
		t.Fatal(err)
	}
	err := verifyLog(older)
	if err == nil || !strings.Contains(err.Error(), "followed by data") {
		t.Fatalf("older log: %v, want data after an invalid entry reported", err)
	}

	// In the newest log, a header that is there but wrong, followed by
	// data, is damage too: only a missing head is a copy cut short.
	garbled := append(append(make([]byte, logHeaderSize), good...), 0x40, 0, 7, 9, 0)
	garbled = append(garbled, torn...)
	if err := os.WriteFile(newest, garbled, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := scrubTornTail(newest, true); err != nil {
		t.Fatal(err)
	}
	if err := verifyLog(newest); err == nil {
		t.Fatal("a garbled header followed by data in the newest log was accepted")
	}
}
