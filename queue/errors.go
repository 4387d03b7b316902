package queue

import (
	"errors"
	"fmt"
)

var (
	// ErrLocked means another process (another tekend) holds the database file.
	ErrLocked = errors.New("database is held by another tekend")
	// ErrFull means the configured size cap is reached; the write was not
	// stored, so the caller must not acknowledge it.
	ErrFull = errors.New("store is full")
	// ErrNotFound means no job or result has the given id or sequence.
	ErrNotFound = errors.New("not found")
	// ErrNoResult means a job has no result yet: it is still waiting or
	// being signed.
	ErrNoResult = errors.New("job has no result yet")
	// ErrClosed means the Store was closed.
	ErrClosed = errors.New("store is closed")
	// ErrReadOnly means a write was attempted on a Store opened with OpenReadOnly.
	ErrReadOnly = errors.New("store is read-only")
	// ErrInvalid means a caller passed a value the store cannot accept.
	ErrInvalid = errors.New("invalid argument")
	// ErrSchema means the file's schema version is newer than this build knows.
	ErrSchema = errors.New("unsupported schema version")
)

// TransitionError reports a state change that the job state machine forbids.
type TransitionError struct {
	ID      string
	From    State
	To      State
	Outcome Outcome
}

func (e *TransitionError) Error() string {
	if e.To == Done {
		return fmt.Sprintf("job %s: transition %s → done(%s) not allowed", e.ID, e.From, e.Outcome)
	}
	return fmt.Sprintf("job %s: transition %s → %s not allowed", e.ID, e.From, e.To)
}

// ChainError names the first audit entry whose link in the hash chain is broken.
type ChainError struct {
	Seq    uint64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at entry %d: %s", e.Seq, e.Reason)
}

// DecodeError reports a stored record that could not be decoded.
type DecodeError struct {
	Kind   string // "job", "result" or "audit"
	Reason string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode %s record: %s", e.Kind, e.Reason)
}
