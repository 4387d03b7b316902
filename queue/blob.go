package queue

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Large values (envelopes, megabytes each) are kept as blobs: a bucket of
// their own under their parent, holding the value in chunks. bbolt keeps a
// value inside its leaf, and a leaf of four keys or fewer is never split,
// so megabyte values side by side in one bucket are copied again — read
// through the file's mapping and written anew — whenever a neighbour is
// written. A blob's bucket is written once and only ever deleted whole;
// chunks bound the runs of free pages one write needs.
const blobChunk = 64 << 10

// blobLenKey holds the blob's length; chunk keys are four bytes, so it
// cannot collide with one.
var blobLenKey = []byte{'n'}

// putBlob stores data under key in parent, replacing any blob there.
func putBlob(parent *bolt.Bucket, key, data []byte) error {
	if parent.Bucket(key) != nil {
		if err := parent.DeleteBucket(key); err != nil {
			return fmt.Errorf("blob %s: %w", key, err)
		}
	}
	b, err := parent.CreateBucket(key)
	if err != nil {
		return fmt.Errorf("blob %s: %w", key, err)
	}
	// Chunks are appended in key order: full pages, no splits to redo.
	b.FillPercent = 1
	if err := b.Put(blobLenKey, binary.AppendUvarint(nil, uint64(len(data)))); err != nil {
		return fmt.Errorf("blob %s: %w", key, err)
	}
	for i := 0; i*blobChunk < len(data); i++ {
		chunk := data[i*blobChunk : min((i+1)*blobChunk, len(data))]
		if err := b.Put(binary.BigEndian.AppendUint32(nil, uint32(i)), chunk); err != nil {
			return fmt.Errorf("blob %s: %w", key, err)
		}
	}
	return nil
}

// getBlob returns a copy of the blob under key in parent, or nil and no
// error when there is none.
func getBlob(parent *bolt.Bucket, key []byte) ([]byte, error) {
	// Only in a read-only transaction is every value in the file's
	// mapping; a write transaction's own values are on the heap.
	mapped := !parent.Tx().Writable()
	b := parent.Bucket(key)
	if b == nil {
		return nil, nil
	}
	corrupt := func(why string) error { return &DecodeError{Kind: "blob", Reason: string(key) + ": " + why} }
	n, k := binary.Uvarint(b.Get(blobLenKey))
	if k <= 0 || n > maxBlob {
		return nil, corrupt("bad length")
	}
	out := make([]byte, 0, n)
	c := b.Cursor()
	for key, v := c.First(); key != nil; key, v = c.Next() {
		if len(key) != 4 {
			continue // the length
		}
		if int(binary.BigEndian.Uint32(key)) != len(out)/blobChunk || len(out)%blobChunk != 0 || uint64(len(out)+len(v)) > n {
			return nil, corrupt("chunks out of order")
		}
		out = append(out, v...)
		if mapped {
			dropPages(v)
		}
	}
	if uint64(len(out)) != n {
		return nil, corrupt(fmt.Sprintf("%d of %d bytes", len(out), n))
	}
	return out, nil
}

// maxBlob bounds a blob's stated length before anything is allocated for
// it; the largest value stored is an envelope, far below.
const maxBlob = 1 << 30

// deleteBlob removes the blob under key in parent, if there is one.
func deleteBlob(parent *bolt.Bucket, key []byte) error {
	if parent.Bucket(key) == nil {
		return nil
	}
	if err := parent.DeleteBucket(key); err != nil {
		return fmt.Errorf("blob %s: %w", key, err)
	}
	return nil
}

var pageSize = uintptr(os.Getpagesize())

// dropPages tells the kernel that the whole pages of v, a value read
// through bbolt's read-only shared mapping of the file, are not needed in
// this process any more. The page cache keeps them; they leave only the
// daemon's resident set, which would otherwise hold every document it has
// read since the file was last mapped. A later read faults them in again.
func dropPages(v []byte) {
	if uintptr(len(v)) < 2*pageSize {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	from := (start+pageSize-1)&^(pageSize-1) - start
	to := (start+uintptr(len(v)))&^(pageSize-1) - start
	if to <= from {
		return
	}
	// Advice, not a requirement: an error changes nothing that was read.
	_ = unix.Madvise(v[from:to], unix.MADV_DONTNEED)
}

// dropMapping tells the kernel that none of the file's pages mapped so far
// are needed in this process: Open's scans of the indexes fault pages in,
// and the kernel maps up to 64 KiB of cached neighbours with each
// (fault-around), so that a store of 100,000 jobs left some 90 MiB of the
// file in the daemon's resident set after Open. The page cache keeps them;
// a later read faults them in again. The mapping is found in
// /proc/self/maps by bbolt's data address, so that nothing else is
// touched; where it cannot be found nothing is done.
func dropMapping(db *bolt.DB) {
	start := db.Info().Data
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil || start == 0 {
		return
	}
	for _, line := range strings.Split(string(maps), "\n") {
		lo, rest, ok := strings.Cut(line, "-")
		if !ok {
			continue
		}
		a, err := strconv.ParseUint(lo, 16, 64)
		if err != nil || uintptr(a) != start {
			continue
		}
		hi, _, _ := strings.Cut(rest, " ")
		b, err := strconv.ParseUint(hi, 16, 64)
		if err != nil || b <= a {
			return
		}
		// The raw call: the address is bbolt's, held as a uintptr, and
		// madvise reads no memory through it.
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, start, uintptr(b-a), unix.MADV_DONTNEED)
		return
	}
}
