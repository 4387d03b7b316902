package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"time"
)

// NewLetterID returns a new letter (and job) id: a UUID version 7 (RFC
// 9562 §5.7) in lower case, a job id form every terminal takes. Its
// first 48 bits are the time in milliseconds and the next 12 count up
// within one millisecond (§6.2, method 1), so ids sort in the order they
// were made in this process, and a store lists letters by id in the
// order they came.
func NewLetterID() string {
	idGen.mu.Lock()
	ms := uint64(time.Now().UnixMilli())
	if ms > idGen.ms {
		idGen.ms, idGen.seq = ms, 0
	} else if idGen.seq++; idGen.seq > 0xfff {
		idGen.ms, idGen.seq = idGen.ms+1, 0 // borrow the next millisecond
	}
	ms, seq := idGen.ms, idGen.seq
	idGen.mu.Unlock()

	var b [16]byte
	_, _ = rand.Read(b[8:]) // crypto/rand.Read never fails (Go 1.24)
	binary.BigEndian.PutUint64(b[:8], ms<<16|0x7000|uint64(seq))
	b[8] = b[8]&0x3f | 0x80 // the RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

var idGen struct {
	mu  sync.Mutex
	ms  uint64
	seq uint64
}
