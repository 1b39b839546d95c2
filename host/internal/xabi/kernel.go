package xabi

import (
	"encoding/binary"
	"errors"

	"github.com/tetratelabs/wazero/api"
)

// kernel is the Extism kernel's memory and allocator, in Go: the native
// engine's replacement for the kernel module go-sdk instantiates beside
// every guest. It keeps the kernel's layout byte for byte in mem, so
// handles, lengths and what a guest reads with load_u8/u64 are the ones
// the kernel gives: a root record at address 1 (initialized flag,
// position, length, error, input offset and length, output offset and
// length), then blocks from address 65, each a 12-byte header (status u8,
// size u32, used u32) before its data. A handle is the address of a
// block's data. Allocation bumps a position, reuses a freed block only when
// the memory is full, and grows the memory a page at a time up to maxPages;
// reset clears every block at once, as the kernel does before each call.
//
// mem is allocated lazily: pages holds the size of the memory the kernel
// would have (16 pages at start), and bytes past len(mem) read as zero.
type kernel struct {
	mem      []byte
	pages    uint32
	maxPages uint32
	// wmem, when set, is the Wasm memory of the kernel module (kmem.go)
	// and mem is all of it: the kernel grows it, and nothing else does.
	wmem api.Memory
}

// attach makes the Wasm memory wm, of the kernel's initial size, the
// kernel's memory.
func (k *kernel) attach(wm api.Memory) {
	k.wmem = wm
	k.mem, _ = wm.Read(0, wm.Size())
}

const (
	kernelPage      = 65536
	kernelInitPages = 16 // the kernel module's initial memory
	rootAddr        = 1
	rootSize        = 64
	blocksAddr      = rootAddr + rootSize
	headerSize      = 12

	offInitialized = rootAddr + 0
	offPosition    = rootAddr + 8
	offLength      = rootAddr + 16
	offError       = rootAddr + 24
	offInputOffset = rootAddr + 32
	offInputLength = rootAddr + 40
	offOutputOff   = rootAddr + 48
	offOutputLen   = rootAddr + 56

	statusUnused = 0
	statusActive = 1
	statusFree   = 2
)

// errKernelOOB is the trap of an access outside the kernel's memory. Its
// first line is the one wazero gives the kernel module's own trap.
var errKernelOOB = errors.New("wasm error: out of bounds memory access\nwasm stack trace:\n\textism:host/env kernel")

func newKernel(maxPages uint32) *kernel {
	if maxPages == 0 || maxPages > 65536 {
		maxPages = 65536
	}
	return &kernel{pages: kernelInitPages, maxPages: maxPages}
}

func (k *kernel) size() uint64 { return uint64(k.pages) * kernelPage }

// ensure makes mem hold at least n bytes.
func (k *kernel) ensure(n uint64) {
	if uint64(len(k.mem)) >= n {
		return
	}
	if uint64(cap(k.mem)) >= n {
		k.mem = k.mem[:n]
		return
	}
	c := uint64(cap(k.mem)) * 2
	if c < n {
		c = n
	}
	if c < 4096 {
		c = 4096
	}
	if c > k.size() {
		c = k.size()
	}
	nm := make([]byte, n, c)
	copy(nm, k.mem)
	k.mem = nm
}

// inMem reports whether [p, p+n) lies in the memory.
func (k *kernel) inMem(p, n uint64) bool { return p <= k.size() && n <= k.size()-p }

// bytesAt returns [p, p+n) of the memory for reading and writing; the
// caller has checked it with inMem.
func (k *kernel) bytesAt(p, n uint64) []byte {
	k.ensure(p + n)
	return k.mem[p : p+n]
}

func (k *kernel) u8(p uint64) byte {
	if !k.inMem(p, 1) {
		panic(errKernelOOB)
	}
	if p >= uint64(len(k.mem)) {
		return 0
	}
	return k.mem[p]
}

func (k *kernel) u32(p uint64) uint32 {
	var b [4]byte
	return binary.LittleEndian.Uint32(k.readAt(p, b[:]))
}

func (k *kernel) u64(p uint64) uint64 {
	var b [8]byte
	return binary.LittleEndian.Uint64(k.readAt(p, b[:]))
}

// readAt returns the len(b) bytes at p: k.mem's own when they are all in
// it, else a copy in b of those that are, zeros after (the kernel's
// memory may end inside a value it has room for).
func (k *kernel) readAt(p uint64, b []byte) []byte {
	n := uint64(len(b))
	if !k.inMem(p, n) {
		panic(errKernelOOB)
	}
	if p+n <= uint64(len(k.mem)) {
		return k.mem[p : p+n]
	}
	if p < uint64(len(k.mem)) {
		copy(b, k.mem[p:])
	}
	return b
}

func (k *kernel) put8(p uint64, v byte) {
	if !k.inMem(p, 1) {
		panic(errKernelOOB)
	}
	k.ensure(p + 1)
	k.mem[p] = v
}

func (k *kernel) put32(p uint64, v uint32) {
	if !k.inMem(p, 4) {
		panic(errKernelOOB)
	}
	k.ensure(p + 4)
	binary.LittleEndian.PutUint32(k.mem[p:], v)
}

func (k *kernel) put64(p uint64, v uint64) {
	if !k.inMem(p, 8) {
		panic(errKernelOOB)
	}
	k.ensure(p + 8)
	binary.LittleEndian.PutUint64(k.mem[p:], v)
}

// root initializes the root record on first use, as MemoryRoot::new.
func (k *kernel) root() {
	if k.u8(offInitialized) != 0 {
		return
	}
	k.put8(offInitialized, 1)
	for _, off := range []uint64{offInputOffset, offInputLength, offOutputOff, offOutputLen, offError, offPosition} {
		k.put64(off, 0)
	}
	k.put64(offLength, kernelPage-rootSize)
	// The first block's header reads as unused.
	for i := uint64(0); i < headerSize; i++ {
		k.put8(blocksAddr+i, statusUnused)
	}
}

// inBoundsFast is the kernel's pointer_in_bounds_fast.
func (k *kernel) inBoundsFast(p uint64) bool { return p >= rootSize && p <= k.size() }

// inBounds is the kernel's pointer_in_bounds.
func (k *kernel) inBounds(p uint64) bool {
	return p >= blocksAddr && p < blocksAddr+k.u64(offLength)
}

func (k *kernel) grow(n uint64) bool {
	if n > uint64(k.maxPages) || uint64(k.pages)+n > uint64(k.maxPages) {
		return false
	}
	if k.wmem != nil {
		if _, ok := k.wmem.Grow(uint32(n)); !ok {
			return false
		}
		k.mem, _ = k.wmem.Read(0, k.wmem.Size())
	}
	k.pages += uint32(n)
	return true
}

// alloc is the kernel's alloc: the handle of a new block of n bytes, or 0.
func (k *kernel) alloc(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	k.root()
	pos := k.u64(offPosition)
	length := k.u64(offLength)
	curr := blocksAddr + pos
	memLeft := length - pos - rootSize
	withBlock := n + headerSize
	if withBlock >= memLeft {
		if withBlock <= pos {
			if b, ok := k.findFreeBlock(n, pos); ok {
				k.put32(b+8, uint32(n))
				k.put8(b, statusActive)
				return b + headerSize
			}
		}
		need := withBlock - memLeft
		npages := need / kernelPage
		if need%kernelPage != 0 {
			npages++
		}
		if !k.grow(npages) {
			return 0
		}
		k.put64(offLength, length+npages*kernelPage)
	}
	k.put64(offPosition, pos+withBlock)
	k.put8(curr, statusActive)
	k.put32(curr+4, uint32(n))
	k.put32(curr+8, uint32(n))
	return uint32Addr(curr) + headerSize
}

// uint32Addr wraps an address as the 32-bit kernel does.
func uint32Addr(p uint64) uint64 { return uint64(uint32(p)) }

// next is the header after block b.
func (k *kernel) next(b uint64) uint64 {
	return uint64(uint32(b + headerSize + uint64(k.u32(b+4))))
}

func (k *kernel) findFreeBlock(n, pos uint64) (uint64, bool) {
	for b := uint64(blocksAddr); b < blocksAddr+pos; {
		status := k.u8(b)
		if status == statusUnused {
			return b, true
		}
		size := uint64(k.u32(b + 4))
		if status == statusFree && size >= n {
			if size-n >= 128 {
				size = uint64(uint32(size - (n + headerSize)))
				k.put32(b+4, uint32(size))
				k.put32(b+8, 0)
				b1 := uint64(uint32(b + headerSize + size))
				k.put32(b1+4, uint32(n))
				k.put32(b1+8, 0)
				k.put8(b1, statusFree)
				return b1, true
			}
			return b, true
		}
		nb := k.next(b)
		if nb <= b {
			// A header the guest overwrote sends the walk backwards; the
			// kernel would loop forever, this one stops.
			return 0, false
		}
		b = nb
	}
	return 0, false
}

// findBlock is the kernel's find_block: the header of the active block
// whose data starts at p.
func (k *kernel) findBlock(p uint64) (uint64, bool) {
	if !k.inBoundsFast(p) {
		return 0, false
	}
	for b := uint64(blocksAddr); b < blocksAddr+p; {
		if k.u8(b) == statusActive && b+headerSize == p {
			return b, true
		}
		nb := k.next(b)
		if nb <= b {
			return 0, false
		}
		b = nb
	}
	return 0, false
}

func (k *kernel) free(p uint64) {
	if p == 0 {
		return
	}
	k.root()
	if b, ok := k.findBlock(p); ok {
		k.put8(b, statusFree)
		if p == k.u64(offInputOffset) {
			k.put64(offInputLength, 0)
		}
	}
}

func (k *kernel) length(p uint64) uint64 {
	if p == 0 {
		return 0
	}
	k.root()
	if b, ok := k.findBlock(p); ok {
		return uint64(k.u32(b + 8))
	}
	return 0
}

func (k *kernel) lengthUnsafe(p uint64) uint64 {
	if p == 0 || !k.inBoundsFast(p) {
		return 0
	}
	b := uint64(uint32(p - headerSize))
	if k.u8(b) != statusActive {
		return 0
	}
	return uint64(k.u32(b + 8))
}

func (k *kernel) loadU8(p uint64) uint32 {
	if !k.inBoundsFast(p) {
		return 0
	}
	return uint32(k.u8(uint64(uint32(p))))
}

func (k *kernel) storeU8(p uint64, v byte) {
	if !k.inBoundsFast(p) {
		return
	}
	k.put8(uint64(uint32(p)), v)
}

func (k *kernel) inputLoadU8(off uint64) uint32 {
	k.root()
	if off >= k.u64(offInputLength) {
		return 0
	}
	return uint32(k.u8(uint64(uint32(k.u64(offInputOffset) + off))))
}

func (k *kernel) inputSet(h, n uint64) {
	k.root()
	if !k.inBounds(h) || !k.inBounds(h+n-1) {
		return
	}
	k.put64(offInputOffset, h)
	k.put64(offInputLength, n)
}

func (k *kernel) outputSet(p, n uint64) {
	k.root()
	if !k.inBounds(p) || !k.inBounds(p+n-1) {
		return
	}
	k.put64(offOutputOff, p)
	k.put64(offOutputLen, n)
}

func (k *kernel) errorSet(h uint64) {
	k.root()
	if h != 0 && !k.inBounds(h) {
		return
	}
	k.put64(offError, h)
}

func (k *kernel) field(off uint64) uint64 {
	k.root()
	return k.u64(off)
}

// reset clears every block and the input, output and error, as the
// kernel's reset.
func (k *kernel) reset() {
	k.root()
	pos := k.u64(offPosition)
	k.put64(offPosition, 0)
	if pos > 0 {
		end := blocksAddr + pos
		if end > k.size() {
			end = k.size()
		}
		if blocksAddr < uint64(len(k.mem)) {
			clear(k.mem[blocksAddr:min(end, uint64(len(k.mem)))])
		}
	}
	k.put64(offError, 0)
	k.put64(offInputOffset, 0)
	k.put64(offInputLength, 0)
	k.put64(offOutputOff, 0)
	k.put64(offOutputLen, 0)
}

// readUint64 and writeUint64 are go-sdk's load_u64, store_u64 and
// input_load_u64, which it implements in Go over the kernel's memory with
// no bounds check but the memory's own (addresses are 32-bit).
func (k *kernel) readUint64(p uint64) (uint64, bool) {
	a := uint64(uint32(p))
	if !k.inMem(a, 8) {
		return 0, false
	}
	return k.u64(a), true
}

func (k *kernel) writeUint64(p, v uint64) bool {
	a := uint64(uint32(p))
	if !k.inMem(a, 8) {
		return false
	}
	k.put64(a, v)
	return true
}

// read returns a copy of the block at handle h, as go-sdk's ReadBytes: its
// length (0 for a handle that names no block), then the bytes there.
func (k *kernel) read(h uint64) ([]byte, error) {
	n := k.length(h)
	a := uint64(uint32(h))
	if !k.inMem(a, n) {
		return nil, errors.New("invalid memory block")
	}
	out := make([]byte, n)
	copy(out, k.view(a, n))
	return out, nil
}

// view returns [a, a+n) without copying; the caller has checked inMem.
func (k *kernel) view(a, n uint64) []byte {
	if a+n <= uint64(len(k.mem)) {
		return k.mem[a : a+n]
	}
	return k.bytesAt(a, n)
}

// write allocates a block holding b, as go-sdk's WriteBytes.
func (k *kernel) write(b []byte) (uint64, error) {
	h := k.alloc(uint64(len(b)))
	a := uint64(uint32(h))
	if !k.inMem(a, uint64(len(b))) {
		return 0, errors.New("failed to write to memory")
	}
	copy(k.bytesAt(a, uint64(len(b))), b)
	return h, nil
}
