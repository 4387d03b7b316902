package pades

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
)

// Limits bound the work Inspect and Sign do for one document, so that a
// small hostile file (a compression bomb, or a few kilobytes of syntax
// that parse into gigabytes of objects) is refused with ErrTooComplex
// instead of exhausting the terminal's memory; they also say whether
// embedded files are accepted. Every bound is counted as the work is
// done, so reading stops as soon as a limit is passed. A zero (or
// negative) field takes its value from DefaultLimits.
//
// Nesting of arrays and dictionaries, of the page tree and of reference
// chains is bounded separately by a constant depth of 64 (far more than
// any writer produces), since what that protects is the stack, not the
// heap.
type Limits struct {
	// MaxDecompressedBytes bounds the bytes inflated from the document's
	// FlateDecode cross-reference and object streams (ISO 32000-1 §7.5.7,
	// §7.5.8), summed over the document. An object stream dropped from
	// the cache and decoded again counts again, and every stream counts
	// at least 1 KiB, so the budget bounds the decoding work, not only
	// the size of one stream.
	MaxDecompressedBytes int64

	// MaxParsedBytes bounds the objects the parser builds, summed over
	// every object it reads (one read twice counts twice). Each value
	// counts an estimate of the heap it takes: about 40 bytes for a
	// number or a reference, its length plus 24 for a string or a name,
	// 336 for a dictionary and 80 more for each of its entries. The
	// estimate follows the allocations, not the bytes of syntax, because
	// dense syntax parses into far more memory than it takes on disk:
	// "<</ 1>>" is 7 bytes and a map of about 400.
	MaxParsedBytes int64

	// MaxObjects bounds the object numbers in the cross-reference, free
	// entries included; the walk for active content reads every one.
	MaxObjects int

	// MaxObjectStreams bounds the decoded object streams kept at once.
	// The least recently used one is dropped; reading it again decodes it
	// again, against MaxDecompressedBytes.
	MaxObjectStreams int

	// AllowEmbeddedFiles accepts embedded files (ISO 32000-1 §7.11.4):
	// the /EmbeddedFiles name tree, file specifications with /EF, and
	// GoToE actions into them. By default they are refused with
	// ErrActiveContent: an attachment is content the kiosk did not show,
	// yet the signature covers it. It is here rather than in Options so
	// that Inspect, which the terminal calls when a job arrives, and
	// Sign agree on what they refuse.
	AllowEmbeddedFiles bool
}

// DefaultLimits are the bounds a zero Limits field takes.
//
// Object and cross-reference streams hold only dictionaries, arrays and
// offsets, never page content or images: a letter's inflate to a few
// kilobytes, a 1,000-page document written by qpdf to 128 KiB
// (TestDefaultLimitsFitLargeDocument), and the densest real documents
// measured (LaTeX manuals full of links) to about half their file size.
// 32 MiB is three times a whole job at api.DefaultMaxContentBytes
// (10 MiB), and a bomb stops at about 34 MiB of allocation where the
// unbounded reader took 2.5 GB for a 1 MB file.
//
// 128 MiB of parsed objects: reading a document, the walk for active
// content included, costs 3.3 MiB for the 1,000-page document and about
// six times the file size for the densest real ones, so a 10 MiB job of
// such syntax still fits twice. Without the bound, an 11 KB file
// allocated 951 MiB.
//
// 262,144 objects is five times what 10 MiB of the densest document
// measured holds (4.8 objects per KiB), and keeps the cross-reference map
// under about 50 MiB.
//
// 16 object streams kept at once is enough for the page tree walk not to
// decode a stream twice in the files we write and receive (writers put
// about 100 objects in a stream and write the page tree in order), while
// keeping at most that many decoded streams alive.
var DefaultLimits = Limits{
	MaxDecompressedBytes: 32 << 20,
	MaxParsedBytes:       128 << 20,
	MaxObjects:           1 << 18,
	MaxObjectStreams:     16,
}

// withDefaults fills zero (and negative) fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	if l.MaxDecompressedBytes <= 0 {
		l.MaxDecompressedBytes = DefaultLimits.MaxDecompressedBytes
	}
	if l.MaxParsedBytes <= 0 {
		l.MaxParsedBytes = DefaultLimits.MaxParsedBytes
	}
	if l.MaxObjects <= 0 {
		l.MaxObjects = DefaultLimits.MaxObjects
	}
	if l.MaxObjectStreams <= 0 {
		l.MaxObjectStreams = DefaultLimits.MaxObjectStreams
	}
	return l
}

// decodeCost is the least a stream counts against MaxDecompressedBytes:
// about what reading even an empty one allocates, so that many tiny
// streams, or one small stream dropped and decoded over and over, are
// bounded too.
const decodeCost = 1 << 10

// Estimated heap, in bytes, of what the lexer builds; see
// Limits.MaxParsedBytes.
const (
	costValue  = 40  // a slot in an array or a dictionary, doubled by growth, and a boxed number
	costToken  = 16  // the string of a keyword or number token
	costRef    = 16  // a boxed reference
	costString = 24  // a boxed slice header
	costDict   = 336 // an empty map and its first group of eight slots
	costEntry  = 80  // a key and value slot, doubled by the table's growth
)

// budget counts one document's work against its Limits. The first limit
// passed sticks: every later charge fails with the same error, and open
// reports it even where a caller had gone on after a failed read.
type budget struct {
	lim      Limits
	inflated int64
	parsed   int64
	err      error
	zr       io.ReadCloser // one zlib reader, reset for every stream
}

func newBudget(lim Limits) *budget { return &budget{lim: lim.withDefaults()} }

func (b *budget) over(what string, limit int64, key string) error {
	if b.err == nil {
		b.err = fmt.Errorf("%w: %s exceed %d (limit %s)", ErrTooComplex, what, limit, key)
	}
	return b.err
}

// parse charges n bytes of parsed objects.
func (b *budget) parse(n int) error {
	if b.err != nil {
		return b.err
	}
	b.parsed += int64(n)
	if b.parsed > b.lim.MaxParsedBytes {
		return b.over("parsed bytes", b.lim.MaxParsedBytes, "max_parsed_bytes")
	}
	return nil
}

// parseLeft is what remains of MaxParsedBytes.
func (b *budget) parseLeft() int64 { return max(0, b.lim.MaxParsedBytes-b.parsed) }

// objects fails when the cross-reference would hold more than MaxObjects
// numbers.
func (b *budget) objects(n int) error {
	if n > b.lim.MaxObjects {
		return b.over("objects", int64(b.lim.MaxObjects), "max_objects")
	}
	return nil
}

// inflate decompresses a zlib stream (§7.4.4), never reading past what is
// left of MaxDecompressedBytes: a bomb stops after the budget, not after
// the bomb. Truncated data decodes to what precedes the damage, as
// viewers do.
func (b *budget) inflate(data []byte) ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	b.inflated += decodeCost
	if b.inflated > b.lim.MaxDecompressedBytes {
		return nil, b.over("decompressed bytes", b.lim.MaxDecompressedBytes, "max_decompressed_bytes")
	}
	left := b.lim.MaxDecompressedBytes - b.inflated
	r := bytes.NewReader(data)
	var err error
	if b.zr == nil {
		b.zr, err = zlib.NewReader(r)
	} else {
		err = b.zr.(zlib.Resetter).Reset(r, nil)
	}
	if err != nil {
		b.zr = nil
		return nil, fmt.Errorf("%w: flate stream: %v", ErrMalformed, err)
	}
	chunks, n, err := readChunks(b.zr, left+1)
	b.inflated += n
	if b.inflated > b.lim.MaxDecompressedBytes {
		return nil, b.over("decompressed bytes", b.lim.MaxDecompressedBytes, "max_decompressed_bytes")
	}
	out := join(chunks, n)
	if err != nil && len(out) == 0 {
		return nil, fmt.Errorf("%w: flate stream: %v", ErrMalformed, err)
	}
	return out, nil
}

// readChunks reads r to its end, to an error or to limit bytes, into
// chunks growing by half, as io.ReadAll does; the chunks hold n bytes. It
// allocates with make alone, not with the append idiom io.ReadAll uses,
// whose cost the race detector's build doubles, so that what a stream
// costs does not depend on how the binary was built.
func readChunks(r io.Reader, limit int64) (chunks [][]byte, n int64, err error) {
	for next := int64(512); n < limit && err == nil; next += next / 2 {
		c := make([]byte, min(next, limit-n))
		var got int
		got, err = io.ReadFull(r, c)
		chunks = append(chunks, c[:got])
		n += int64(got)
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return chunks, n, err
}

// join copies the chunks, n bytes in all, into one slice: about twice
// the data in allocations, once.
func join(chunks [][]byte, n int64) []byte {
	if len(chunks) == 1 {
		return chunks[0]
	}
	out := make([]byte, 0, n)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out
}

// streamCache keeps the most recently used decoded object streams, at
// most max of them.
type streamCache struct {
	max  int
	nums []int // least recently used first
	m    map[int]*objectStream
}

func (c *streamCache) get(num int) (*objectStream, bool) {
	os, ok := c.m[num]
	if ok {
		c.touch(num)
	}
	return os, ok
}

func (c *streamCache) touch(num int) {
	for i, n := range c.nums {
		if n == num {
			copy(c.nums[i:], c.nums[i+1:])
			c.nums[len(c.nums)-1] = num
			return
		}
	}
}

func (c *streamCache) put(num int, os *objectStream) {
	if c.m == nil {
		c.m = map[int]*objectStream{}
	}
	if _, ok := c.m[num]; ok {
		c.m[num] = os
		c.touch(num)
		return
	}
	if len(c.nums) >= c.max {
		delete(c.m, c.nums[0])
		c.nums = append(c.nums[:0], c.nums[1:]...)
	}
	c.nums = append(c.nums, num)
	c.m[num] = os
}
