package queue

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrLocked means another process (another tekend) holds the database file.
	ErrLocked = errors.New("database is held by another tekend")
	// ErrFull means there was no room for the write: the configured size
	// cap is reached, or the filesystem is full (ENOSPC, EDQUOT). The write
	// was not stored, so the caller must not acknowledge it; Store.Full
	// says whether the store is still full.
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
	// ErrSchema means the file's schema version is newer than this build
	// knows, or its layout lacks a bucket of that version.
	ErrSchema = errors.New("unsupported schema version")
	// ErrReplayed means a job id was offered again after its job was done
	// and pruned, while its replay guard is kept (see Prune). Nothing was
	// stored. Every such error is a *ReplayError.
	ErrReplayed = errors.New("job id already used by a pruned job")
)

// ReplayError refuses an Insert whose job id belongs to a job that was done
// and pruned, while the envelope of that job could still be accepted. The
// id is spent: the job is not stored again, whether or not the envelope
// offered is the one the pruned job had (SameEnvelope tells). It matches
// ErrReplayed with errors.Is.
type ReplayError struct {
	ID string
	// EnvelopeSHA256 is the SHA-256 of the pruned job's envelope as it was
	// stored (the envelope_sha256 of its receipt).
	EnvelopeSHA256 Digest
	// Until is when the guard may go: the pruned job's ExpiresAt plus
	// Options.ReplaySkew. Zero for a job without an ExpiresAt: kept forever.
	Until time.Time
	// SameEnvelope reports whether the envelope offered has the hash
	// EnvelopeSHA256: a replay of the very job rather than a new job
	// reusing its id.
	SameEnvelope bool
}

func (e *ReplayError) Error() string {
	what := "same envelope"
	if !e.SameEnvelope {
		what = "different envelope"
	}
	until := "forever"
	if !e.Until.IsZero() {
		until = "until " + e.Until.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("job %s was done and pruned, its id is refused %s (envelope sha256 %x, %s)",
		e.ID, until, e.EnvelopeSHA256[:], what)
}

// Is makes errors.Is(err, ErrReplayed) hold for every *ReplayError.
func (e *ReplayError) Is(target error) bool { return target == ErrReplayed }

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
	Kind   string // "job", "result", "audit" or "guard"
	Reason string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode %s record: %s", e.Kind, e.Reason)
}
