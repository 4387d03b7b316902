package queue

import (
	"encoding/hex"
	"fmt"
	"time"
)

// State is where a job stands in its life.
type State uint8

// The job states; see the package documentation for the allowed transitions.
const (
	Received State = iota + 1
	Ready
	Signing
	Done
)

var stateNames = [...]string{Received: "received", Ready: "ready", Signing: "signing", Done: "done"}

func (s State) valid() bool { return s >= Received && s <= Done }

func (s State) String() string {
	if s.valid() {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText encodes the state by name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Outcome is how a done job ended.
type Outcome uint8

// The outcomes of a done job. NoOutcome is the outcome of a job not yet done.
const (
	NoOutcome Outcome = iota
	Signed
	Rejected
	Expired
	Cancelled
	Failed
)

var outcomeNames = [...]string{NoOutcome: "", Signed: "signed", Rejected: "rejected", Expired: "expired", Cancelled: "cancelled", Failed: "failed"}

func (o Outcome) valid() bool { return o <= Failed }

func (o Outcome) String() string {
	if o.valid() {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// MarshalText encodes the outcome by name.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Digest is a SHA-256 value. Fixed-size on purpose: an audit entry can name
// a document only by its digest, never carry its bytes.
type Digest [32]byte

// MarshalText encodes the digest as lowercase hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(d[:])), nil }

// UnmarshalText decodes a lowercase or uppercase hex digest.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("digest: want 64 hex characters, got %d", len(b))
	}
	_, err := hex.Decode(d[:], b)
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	return nil
}

// Job is one signing job as stored.
type Job struct {
	ID       string // chosen by the central system (ULID or UUID)
	Terminal string
	// Signer is the lowercase hex SHA-256 of the signer certificate; empty
	// when the job is not addressed to one signer.
	Signer string
	// Meta is display metadata (title, number, sender), opaque to the store.
	Meta []byte
	// Envelope is the signed job exactly as received, kept for audit and
	// re-verification. Only the reads that say so fill it in: it holds the
	// documents, megabytes each, which lists and state changes never need.
	Envelope []byte
	// EnvelopeSHA256 is the SHA-256 of Envelope, set by the store: the
	// envelope_sha256 of the job's receipts, known without the envelope.
	EnvelopeSHA256 Digest
	Digests        []Digest // per-document SHA-256, in document order
	ReceivedAt     time.Time
	ExpiresAt      time.Time // zero: never expires
	UpdatedAt      time.Time
	State          State
	Outcome        Outcome
	Reason         string
	ResultSeq      uint64 // outbox sequence of the job's result once done
}

// Result is the outcome of a job waiting in (or delivered from) the outbox.
type Result struct {
	Seq         uint64
	JobID       string
	Outcome     Outcome
	Reason      string
	Payload     []byte // encoded by the wire layer; opaque here
	CreatedAt   time.Time
	DeliveredAt time.Time // zero until the central side acknowledged it
}

// Event names what an audit entry records.
type Event string

// Events the store itself appends; callers may append their own.
const (
	EventReceived  Event = "job.received"
	EventReady     Event = "job.ready"
	EventSigning   Event = "job.signing"
	EventAbandoned Event = "job.abandoned"
	EventDone      Event = "job.done"
	EventRecovered Event = "job.recovered" // signing → ready on open after a crash
)

// AuditEntry is one link of the append-only, hash-chained audit log.
type AuditEntry struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Terminal string    `json:"terminal"`
	JobID    string    `json:"job_id,omitempty"`
	Event    Event     `json:"event"`
	Signer   string    `json:"signer,omitempty"`
	Docs     []Digest  `json:"docs,omitempty"`
	Outcome  Outcome   `json:"outcome,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Prev     Digest    `json:"prev"`
}
