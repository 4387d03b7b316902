// Package store keeps the gateway's letters durably: what letter systems
// submitted, what became of each at its terminal, the results, the feed
// of changes each client system reads or is sent by webhook, and the
// audit of every call. Two implementations share one contract, checked
// by storetest: an embedded bbolt file (boltstore) for one gateway, and
// PostgreSQL (pgstore) for several behind a load balancer.
package store

import (
	"context"
	"errors"
	"time"
)

// State is where a letter stands.
type State string

// The states of a letter. Queued, Sent and Stored are on the way; the
// others are final and never change again.
const (
	Queued    State = "queued"    // accepted by the gateway, not yet on the broker
	Sent      State = "sent"      // published to its terminal, no receipt yet
	Stored    State = "stored"    // the terminal stored it: waiting for the official
	Refused   State = "refused"   // the terminal refused it (Reason says why)
	Signed    State = "signed"    // the official signed it: the result holds the signatures
	Rejected  State = "rejected"  // the official declined (Detail: their reason)
	Expired   State = "expired"   // nobody signed it before it expired
	Cancelled State = "cancelled" // withdrawn by its client system
	Failed    State = "failed"    // the terminal could not sign it (Reason says why)
)

// Final reports whether nothing can happen to a letter in state s any
// more.
func (s State) Final() bool {
	switch s {
	case Queued, Sent, Stored:
		return false
	}
	return true
}

// Known reports whether s is one of the states.
func (s State) Known() bool {
	switch s {
	case Queued, Sent, Stored, Refused, Signed, Rejected, Expired, Cancelled, Failed:
		return true
	}
	return false
}

// Letter is one signing request of a client system: one job at one
// terminal for one official.
type Letter struct {
	ID     string // the job id: a ULID the gateway chose
	Client string // the client system that submitted it
	// IdempotencyKey is the client's own key for the request, unique per
	// client when not empty; RequestSHA256 is the hash of the request it
	// came with, so a replay with other contents is told apart.
	IdempotencyKey string
	RequestSHA256  string
	Terminal       string
	SignerCert     string // SHA-256 of the signer certificate, hex
	SignerNIP      string
	Title          string
	Number         string
	State          State
	Reason         string // reason code of a refusal, failure or cancellation
	Detail         string // free text: the official's reason for a rejection, a refusal's detail
	CancelAsked    bool   // the client asked for a cancel; the terminal's answer is the final state
	CreatedAt      time.Time
	UpdatedAt      time.Time
	ExpiresAt      time.Time
	Seq            uint64 // the feed position of its last change
	// Receipts are the terminal's answers to the letter's job and
	// cancel, the latest last.
	Receipts []Receipt
	// Envelope is the signed job as published; Result the terminal's
	// result as it arrived. Get fills both; List leaves them nil.
	Envelope []byte
	Result   []byte
	// LeaseUntil: a gateway instance publishing a queued letter holds it
	// until then (ClaimQueued).
	LeaseUntil time.Time
}

// Receipt is a terminal's answer to a letter's job or cancel.
type Receipt struct {
	For    string // "job" or "cancel"
	Status string // stored, duplicate, refused
	Reason string
	Detail string
	At     time.Time
}

// Event is one change of a letter in the feed of its client system. Seq
// grows with every event of the store, and events become visible in
// the order of their Seq: a reader that has seen Seq n has seen every
// event before it.
type Event struct {
	Seq      uint64
	Client   string
	LetterID string
	State    State
	Reason   string
	Detail   string
	At       time.Time
}

// Delivery is one webhook delivery of one event to one endpoint of the
// client system, tried until the endpoint answers 2xx.
type Delivery struct {
	ID         uint64
	Client     string
	Endpoint   string // the endpoint's name in the configuration
	Event      Event
	Attempts   int
	NextAt     time.Time // when the next attempt is due
	LeaseUntil time.Time // an instance is trying it until then
	Done       bool
	DoneAt     time.Time
	LastStatus int    // HTTP status of the last attempt, 0 when none came
	LastError  string // what went wrong with the last attempt
}

// Attempt is the outcome of one try of a delivery.
type Attempt struct {
	At     time.Time
	Status int    // HTTP status, 0 when no answer came
	Error  string // empty when the endpoint took it
	OK     bool
	// NextAt is when to try again when not OK.
	NextAt time.Time
}

// Query selects letters for List: each set field must match. Letters
// come oldest first, from just after the After cursor.
type Query struct {
	Client   string
	State    State
	Signer   string // certificate hash or NIP
	Terminal string
	After    string // the Next of the previous page; empty for the first
	Limit    int    // 1 to MaxPage; 0 means DefaultPage
}

// Page limits of List.
const (
	DefaultPage = 50
	MaxPage     = 500
)

// Page is one page of List.
type Page struct {
	Letters []*Letter
	Next    string // cursor of the next page; empty at the end
}

// AuditEntry records one call of the gateway's API.
type AuditEntry struct {
	At       time.Time
	Client   string // empty when the caller was not authenticated
	Method   string
	Path     string
	Status   int
	LetterID string
	Remote   string
}

// Store is the gateway's durable state. Every method is safe for
// concurrent use, and for use by several gateway instances at once where
// the implementation shares a database.
type Store interface {
	// Create stores l, its State Queued, and its first event. When the
	// client already has a letter under l.IdempotencyKey, nothing is
	// stored and that letter is returned with created false, and with
	// ErrIdempotencyMismatch when its RequestSHA256 differs.
	Create(ctx context.Context, l *Letter) (stored *Letter, created bool, err error)
	// Get returns a letter with its envelope and result, or ErrNotFound.
	Get(ctx context.Context, id string) (*Letter, error)
	// List returns a page of letters without envelopes or results.
	List(ctx context.Context, q Query) (Page, error)
	// Change runs fn on the letter in one transaction. When fn returns
	// true the letter is written with UpdatedAt now and a new Seq, and,
	// when its State, Reason or Detail changed, an event is appended
	// with a delivery to each of hooks(letter.Client), all in the same
	// transaction: a change is never without its event nor its webhooks.
	// fn may be called more than once (a retried transaction).
	Change(ctx context.Context, id string, fn func(*Letter) (bool, error)) (*Letter, error)
	// ClaimQueued returns up to limit queued letters whose lease ran out,
	// oldest first, each leased until until.
	ClaimQueued(ctx context.Context, now, until time.Time, limit int) ([]*Letter, error)
	// Unfinished returns the letters of a terminal that are Sent or
	// Stored and not expired at now, with envelopes, oldest first: what a
	// terminal's Sync may show it lacks.
	Unfinished(ctx context.Context, terminal string, now time.Time) ([]*Letter, error)
	// Events returns up to limit events of a client after Seq after.
	Events(ctx context.Context, client string, after uint64, limit int) ([]Event, error)
	// ClaimDeliveries returns up to limit deliveries not done, due at now
	// and not leased, each leased until until.
	ClaimDeliveries(ctx context.Context, now, until time.Time, limit int) ([]Delivery, error)
	// Attempted records the outcome of one try of a delivery and ends its
	// lease.
	Attempted(ctx context.Context, id uint64, a Attempt) error
	// Deliveries returns the deliveries of a letter's events, oldest
	// first: its delivery log.
	Deliveries(ctx context.Context, letterID string) ([]Delivery, error)
	// Audit appends an entry to the audit log.
	Audit(ctx context.Context, e AuditEntry) error
	// Counts returns the number of letters in each state.
	Counts(ctx context.Context) (map[State]int, error)
	Close() error
}

// Hooks names the webhook endpoints of a client system.
type Hooks func(client string) []string

// Errors a caller decides on.
var (
	ErrNotFound            = errors.New("no such letter")
	ErrIdempotencyMismatch = errors.New("the idempotency key was used with another request")
	ErrFinal               = errors.New("the letter is final")
)
