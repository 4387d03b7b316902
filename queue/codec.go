package queue

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"
)

// Record format versions; see the package documentation for the layout.
const (
	// jobVersionInline records (schema 1 and 2) carry the envelope itself;
	// jobVersion records carry its SHA-256 and the envelope lives in
	// bucketEnvelopes, written once, so a state change rewrites a few
	// hundred bytes instead of megabytes of documents.
	jobVersionInline = 1
	jobVersion       = 2
	// Likewise a result's payload (a signed PDF can be megabytes) moved
	// to bucketPayloads with schema 3: an acknowledgement rewrites the
	// record, never the payload.
	resultVersionInline = 1
	resultVersion       = 2
	auditVersion        = 1
	guardVersion        = 1
)

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64)   { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) byte(v uint8)    { e.b = append(e.b, v) }
func (e *encoder) bytes(v []byte)  { e.uint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *encoder) string(v string) { e.uint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *encoder) digest(d Digest) { e.b = append(e.b, d[:]...) }
func (e *encoder) digests(d []Digest) {
	e.uint(uint64(len(d)))
	for _, x := range d {
		e.digest(x)
	}
}

func (e *encoder) time(t time.Time) {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	e.b = binary.AppendVarint(e.b, n)
}

// decoder reads a record; the first error sticks and later reads return zero values.
type decoder struct {
	b    []byte
	err  string
	kind string
}

func (d *decoder) fail(msg string) {
	if d.err == "" {
		d.err = msg
	}
	d.b = nil
}

func (d *decoder) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad unsigned integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() uint8 {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail("length beyond end of record")
		return nil
	}
	if n == 0 {
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b)
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) digest() Digest {
	var v Digest
	if len(d.b) < len(v) {
		d.fail("truncated digest")
		return v
	}
	copy(v[:], d.b)
	d.b = d.b[len(v):]
	return v
}

func (d *decoder) digests() []Digest {
	n := d.uint()
	if n > uint64(len(d.b)/32) {
		d.fail("digest count beyond end of record")
		return nil
	}
	if n == 0 {
		return nil
	}
	v := make([]Digest, n)
	for i := range v {
		v[i] = d.digest()
	}
	return v
}

func (d *decoder) time() time.Time {
	n, k := binary.Varint(d.b)
	if k <= 0 {
		d.fail("bad time")
		return time.Time{}
	}
	d.b = d.b[k:]
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (d *decoder) version(want uint8) { d.versionIn(want, want) }

// versionIn reads a version byte that must lie in [lo, hi].
func (d *decoder) versionIn(lo, hi uint8) uint8 {
	v := d.byte()
	if d.err == "" && (v < lo || v > hi) {
		d.fail(fmt.Sprintf("unknown version %d", v))
	}
	return v
}

// view is a length-prefixed byte string without copying it: valid as long
// as the record is (inside its transaction).
func (d *decoder) view() []byte {
	n := d.uint()
	if d.err != "" {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length beyond end of record")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// digestField is a Digest written as a byte string (length 32).
func (d *decoder) digestField() Digest {
	var g Digest
	v := d.view()
	if d.err == "" && len(v) != len(g) {
		d.fail(fmt.Sprintf("digest of %d bytes", len(v)))
	}
	copy(g[:], v)
	return g
}

func (d *decoder) state() State {
	s := State(d.byte())
	if d.err == "" && !s.valid() {
		d.fail(fmt.Sprintf("unknown state %d", s))
	}
	return s
}

func (d *decoder) outcome() Outcome {
	o := Outcome(d.byte())
	if d.err == "" && !o.valid() {
		d.fail(fmt.Sprintf("unknown outcome %d", o))
	}
	return o
}

func (d *decoder) finish() error {
	if d.err == "" && len(d.b) != 0 {
		d.err = fmt.Sprintf("%d trailing bytes", len(d.b))
	}
	if d.err != "" {
		return &DecodeError{Kind: d.kind, Reason: d.err}
	}
	return nil
}

func encodeJob(j *Job) []byte {
	e := encoder{b: make([]byte, 0, 160+len(j.Meta)+32*len(j.Digests))}
	e.byte(jobVersion)
	e.string(j.ID)
	e.string(j.Terminal)
	e.string(j.Signer)
	e.bytes(j.Meta)
	e.bytes(j.EnvelopeSHA256[:])
	e.digests(j.Digests)
	e.time(j.ReceivedAt)
	e.time(j.ExpiresAt)
	e.time(j.UpdatedAt)
	e.byte(uint8(j.State))
	e.byte(uint8(j.Outcome))
	e.string(j.Reason)
	e.uint(j.ResultSeq)
	return e.b
}

// decodeJob decodes a stored job record: a current one without its
// envelope (which is not in the record), an inline one with it.
func decodeJob(b []byte) (Job, error) {
	j, _, err := decodeJobWith(b, true)
	return j, err
}

// decodeJobWith decodes a job record and reports whether its envelope is
// inline (a record of schema 2 or older). Of an inline record the envelope
// is copied out only when envelope is true (lists need the head of many
// jobs, never their documents); its SHA-256 is filled in either way.
func decodeJobWith(b []byte, envelope bool) (j Job, inline bool, err error) {
	d := decoder{b: b, kind: "job"}
	v := d.versionIn(jobVersionInline, jobVersion)
	inline = v == jobVersionInline
	j.ID = d.string()
	j.Terminal = d.string()
	j.Signer = d.string()
	j.Meta = d.bytes()
	if inline {
		env := d.view()
		j.EnvelopeSHA256 = sha256.Sum256(env)
		if envelope && d.err == "" {
			j.Envelope = append([]byte{}, env...)
		}
	} else {
		j.EnvelopeSHA256 = d.digestField()
	}
	j.Digests = d.digests()
	j.ReceivedAt = d.time()
	j.ExpiresAt = d.time()
	j.UpdatedAt = d.time()
	j.State = d.state()
	j.Outcome = d.outcome()
	j.Reason = d.string()
	j.ResultSeq = d.uint()
	if err := d.finish(); err != nil {
		return Job{}, false, err
	}
	return j, inline, nil
}

func encodeResult(r *Result) []byte {
	e := encoder{b: make([]byte, 0, 64+len(r.JobID)+len(r.Reason))}
	e.byte(resultVersion)
	e.uint(r.Seq)
	e.string(r.JobID)
	e.byte(uint8(r.Outcome))
	e.string(r.Reason)
	e.bytes(nil) // the payload's place in an inline record
	e.time(r.CreatedAt)
	e.time(r.DeliveredAt)
	return e.b
}

// decodeResult decodes a stored outbox record: a current one without its
// payload (which is not in the record), an inline one with it.
func decodeResult(b []byte) (Result, error) {
	r, _, err := decodeResultWith(b, true)
	return r, err
}

// decodeResultWith decodes an outbox record and reports whether its
// payload is inline (schema 2 or older); that payload is copied out only
// when payload is true.
func decodeResultWith(b []byte, payload bool) (r Result, inline bool, err error) {
	d := decoder{b: b, kind: "result"}
	inline = d.versionIn(resultVersionInline, resultVersion) == resultVersionInline
	r.Seq = d.uint()
	r.JobID = d.string()
	r.Outcome = d.outcome()
	r.Reason = d.string()
	if p := d.view(); inline && payload && d.err == "" {
		r.Payload = append([]byte{}, p...)
	} else if !inline && len(p) != 0 {
		d.fail("payload inside a record of version 2")
	}
	r.CreatedAt = d.time()
	r.DeliveredAt = d.time()
	if err := d.finish(); err != nil {
		return Result{}, false, err
	}
	return r, inline, nil
}

func encodeAudit(a *AuditEntry) []byte {
	e := encoder{b: make([]byte, 0, 160+32*len(a.Docs))}
	e.byte(auditVersion)
	e.uint(a.Seq)
	e.time(a.Time)
	e.string(a.Terminal)
	e.string(a.JobID)
	e.string(string(a.Event))
	e.string(a.Signer)
	e.digests(a.Docs)
	e.byte(uint8(a.Outcome))
	e.string(a.Reason)
	e.digest(a.Prev)
	return e.b
}

// decodeAudit decodes a stored audit record.
func decodeAudit(b []byte) (AuditEntry, error) {
	d := decoder{b: b, kind: "audit"}
	var a AuditEntry
	d.version(auditVersion)
	a.Seq = d.uint()
	a.Time = d.time()
	a.Terminal = d.string()
	a.JobID = d.string()
	a.Event = Event(d.string())
	a.Signer = d.string()
	a.Docs = d.digests()
	a.Outcome = d.outcome()
	a.Reason = d.string()
	a.Prev = d.digest()
	if err := d.finish(); err != nil {
		return AuditEntry{}, err
	}
	return a, nil
}

// hashAudit is the link value the next entry stores in Prev.
func hashAudit(encoded []byte) Digest { return sha256.Sum256(encoded) }

// guard is what Prune keeps of a done job while its envelope could still be
// replayed: the id, the envelope's hash and how long it is kept.
type guard struct {
	ID             string
	EnvelopeSHA256 Digest
	Until          time.Time // zero: kept forever (the job never expired)
}

func encodeGuard(g *guard) []byte {
	e := encoder{b: make([]byte, 0, 1+1+len(g.ID)+32+10)}
	e.byte(guardVersion)
	e.string(g.ID)
	e.digest(g.EnvelopeSHA256)
	e.time(g.Until)
	return e.b
}

// decodeGuard decodes a stored replay guard record.
func decodeGuard(b []byte) (guard, error) {
	d := decoder{b: b, kind: "guard"}
	var g guard
	d.version(guardVersion)
	g.ID = d.string()
	g.EnvelopeSHA256 = d.digest()
	g.Until = d.time()
	switch {
	case d.err != "":
	case g.ID == "":
		d.fail("empty job id")
	case !g.Until.IsZero() && g.Until.UnixNano() < 0:
		d.fail("until before 1970")
	}
	if err := d.finish(); err != nil {
		return guard{}, err
	}
	return g, nil
}
