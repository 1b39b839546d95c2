package badgerstore

import (
	"github.com/dgraph-io/badger/v4"
	badgeropts "github.com/dgraph-io/badger/v4/options"
)

// Badger's memory. Everything Badger buffers is Go heap (ristretto's
// allocator is make without the jemalloc build tag), so its options, not
// the store's size, must bound it: the store holds a backlog of any size on
// disk while the engine's heap stays bounded by its workers. What each
// option below costs and saves was measured with TestBacklog_Million
// (host/workflow) and heap profiles at each new peak; docs/performance.md
// has the figures. With Badger's defaults plus tables of one size and two
// compactors, the peak live heap draining 300,000 queued runs was 300 MiB,
// 87% of it Badger's compaction and flush buffers, compressed copies of
// blocks and decompressed blocks.
// badgerHeapBudget is what badgerHeapBound may be: three quarters of the
// 256 MiB the engine's whole heap may reach draining a backlog of any size.
const badgerHeapBudget = 192 << 20

const (
	// numMemtables is how many memtables fill or wait for their flush
	// before writes stall; each is an arena of 1.3 memTableSize
	// allocated whole (memTableSize also sets the largest transaction
	// Badger takes, 15% of it: see txnMaxBytes).
	numMemtables = 3
	// numCompactors is Badger's minimum: one for level 0, one for the
	// rest. Each compaction has up to 8 + 6 output tables in flight.
	numCompactors = 2
	// baseTableSize is the size of every table below level 0 (Badger's
	// default is 2 MiB, doubling per level; Open sets the multiplier to
	// 1). A table being built holds a buffer of twice its size, so the
	// tables in flight of both compactors hold up to 2 × 14 × 2 ×
	// baseTableSize: 56 MiB at 1 MiB where they held 112 MiB at 2 MiB. The
	// cost is twice as many table files (about 1,100 at 1,000,000 stored
	// runs, each an open file and a mapping) and more, smaller compactions.
	baseTableSize = 1 << 20
)

// tableCompression is the compression of the tables Badger writes:
// none. With Snappy (Badger's default) a compaction keeps a compressed copy
// of every block it builds, every read of a block decompresses it into a
// new buffer, and Badger then needs a block cache (it refuses to open
// without one) to keep reads from decompressing the same blocks again: at
// 300,000 runs that was 90 MiB of builders' compressed copies and
// decompressed blocks, and the cache 32 MiB more. Uncompressed blocks are
// read in place from the table's mapping, with no copy and no cache (the
// operating system's page cache holds them), so blockCacheSize is 0. The
// cost is disk (995 MiB of tables for 1,000,000 runs being drained).
// Badger records each table's compression in the MANIFEST and reads the
// table with it, so stores written with Snappy open and read as before;
// their tables are rewritten uncompressed as compactions reach them.
//
// Both are variables for the test of stores written with Snappy, which
// needs a block cache.
var (
	tableCompression = badgeropts.None
	blockCacheSize   int64
)

// badgerOptions returns the options Open gives Badger for dir.
func badgerOptions(dir string, o options) badger.Options {
	bo := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{o.logger}).
		WithSyncWrites(o.syncWrites).
		WithDetectConflicts(false). // the committer is the only writer
		WithNumVersionsToKeep(1).
		WithMetricsEnabled(false).
		WithChecksumVerificationMode(badgeropts.OnTableRead).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithCompression(tableCompression).
		WithBlockCacheSize(blockCacheSize).
		// Table indexes and Bloom filters are read in place from the
		// mapped table files (the tables are not encrypted): no cache.
		WithIndexCacheSize(0).
		// Compaction builds each output table in a buffer of twice the
		// table's size, several at once per compactor: with Badger's
		// tables growing twofold per level and four compactors, those
		// buffers were 92% of a 507 MiB peak at 200,000 runs. Tables of
		// one size and two compactors bound them whatever the store's
		// size.
		WithBaseTableSize(baseTableSize).
		WithNumCompactors(numCompactors).
		WithValueLogFileSize(valueLogFileSize).
		WithValueThreshold(valueThreshold)
	bo.TableSizeMultiplier = 1
	return bo
}

// badgerHeapBound is the most Go heap Badger's options let it hold at once
// for writing and compacting, by Badger v4.9's arithmetic: the memtables'
// arenas (each 1.3 MemTableSize: the one written, NumMemtables full ones
// queued for their flush and the one being flushed), the flush of a memtable into a level-0 table
// (its buffer grows by doubling to about twice the memtable), the output
// tables of every compactor in flight (8 + 6 each, each a buffer of twice
// the table size; BaseTableSize is the largest table with a multiplier of
// 1) and the block and index caches. Compression doubles what a table
// being built holds (its compressed copy of every block) and adds the
// decompressed blocks of every read, which no option bounds: the bound is
// then infinite (-1). Not counted: up to 8 idle table buffers Badger keeps
// for reuse while it is building tables (it releases one every 2 s once it
// stops), and what reads allocate (keys and values they copy). A build
// may take a buffer from that pool larger than it needs: draining
// 1,000,000 runs, a memtable flush held 56 MiB at the peak (145 MiB in
// all), more than the flush term here. The soak is the measurement.
func badgerHeapBound(bo badger.Options) int64 {
	if bo.Compression != badgeropts.None || bo.TableSizeMultiplier != 1 {
		return -1
	}
	arena := bo.MemTableSize + 2*(15*bo.MemTableSize/100)
	memtables := int64(bo.NumMemtables+2) * arena
	flush := 2 * bo.MemTableSize
	compaction := int64(bo.NumCompactors) * (8 + 6) * 2 * bo.BaseTableSize
	return memtables + flush + compaction + bo.BlockCacheSize + bo.IndexCacheSize
}
