package queue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxIDLen bounds job ids; bbolt keys may be longer, but an id this long is
// not a ULID or UUID and is refused before it reaches the file.
const maxIDLen = 128

// allowed is the job state machine: from → to → outcomes (NoOutcome for
// transitions that are not to done).
var allowed = map[State]map[State][]Outcome{
	Received: {Ready: {NoOutcome}, Done: {Rejected, Failed, Expired}},
	Ready:    {Signing: {NoOutcome}, Done: {Rejected, Expired, Cancelled}},
	Signing:  {Ready: {NoOutcome}, Done: {Signed, Failed}},
}

// CanTransition reports whether the state machine allows from → to with
// outcome (NoOutcome unless to is Done).
func CanTransition(from, to State, outcome Outcome) bool {
	for _, o := range allowed[from][to] {
		if o == outcome {
			return true
		}
	}
	return false
}

// Change is a requested state change of one job.
type Change struct {
	To      State
	Outcome Outcome // required when To is Done, NoOutcome otherwise
	Reason  string  // why; kept on the job, in the result and in the audit log
	// Payload is the encoded result, written to the outbox when To is Done.
	Payload []byte
	// Hold keeps that result out of the outbox until ReleaseResult: the
	// job is done, its result stored, and nothing is sent yet.
	Hold bool
}

func validateJob(j *Job) error {
	switch {
	case j.ID == "" || len(j.ID) > maxIDLen:
		return fmt.Errorf("job id must be 1..%d bytes: %w", maxIDLen, ErrInvalid)
	case j.Signer != "" && !isHexDigest(j.Signer):
		return fmt.Errorf("job %s: signer must be 64 lowercase hex characters: %w", j.ID, ErrInvalid)
	case !j.ExpiresAt.IsZero() && j.ExpiresAt.UnixNano() <= 0:
		return fmt.Errorf("job %s: expiry before 1970: %w", j.ID, ErrInvalid)
	}
	return nil
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && s == toLower(s)
}

func toLower(s string) string { return string(bytes.ToLower([]byte(s))) }

// Insert stores a new job in state received and returns it with created
// true. Insert is idempotent by job id: for an id already stored it returns
// the existing record (in whatever state it is) with created false and
// stores nothing. For the id of a job that was done and pruned while its
// replay guard is kept (see Prune) it stores nothing and fails with a
// *ReplayError (errors.Is ErrReplayed), whether or not the envelope is the
// one the pruned job had: the id is spent. It returns only once the job is
// durable; ErrFull means it was not stored and must not be acknowledged.
func (s *Store) Insert(ctx context.Context, j Job) (Job, bool, error) {
	return s.insert(ctx, j, false)
}

// InsertReady is Insert for a job that needs nothing more before it waits
// for its signer: stored and made ready in one transaction, one fsync
// instead of two, with both moves in the audit log as Insert and a
// Transition to Ready would write them. An id already stored is returned
// as Insert returns it, in whatever state it is.
func (s *Store) InsertReady(ctx context.Context, j Job) (Job, bool, error) {
	return s.insert(ctx, j, true)
}

func (s *Store) insert(ctx context.Context, j Job, ready bool) (Job, bool, error) {
	if err := validateJob(&j); err != nil {
		return Job{}, false, err
	}
	now := s.opts.Now().UTC()
	j.State, j.Outcome, j.Reason, j.ResultSeq = Received, NoOutcome, "", 0
	if j.ReceivedAt.IsZero() {
		j.ReceivedAt = now
	}
	j.UpdatedAt = now
	if j.Terminal == "" {
		j.Terminal = s.opts.TerminalID
	}
	j.EnvelopeSHA256 = sha256.Sum256(j.Envelope)
	var out Job
	var created bool
	err := s.submit(ctx, true, func(tx *bolt.Tx, d *delta) error {
		if old := tx.Bucket(bucketJobs).Get([]byte(j.ID)); old != nil {
			existing, err := loadJob(tx, []byte(j.ID), true)
			if err != nil {
				return fmt.Errorf("job %s: %w", j.ID, err)
			}
			if m, ok := s.owedMoveOf(existing.ID); ok {
				m.apply(&existing)
			}
			out, created = existing, false
			return nil
		}
		if err := checkGuard(tx, j.ID, j.Envelope); err != nil {
			return err
		}
		if err := s.putJob(tx, &j, 0); err != nil {
			return err
		}
		d.move(0, Received)
		d.created++
		d.waiting(j.ExpiresAt)
		d.arrive(j.ID, j.ReceivedAt)
		if err := s.appendAudit(tx, &AuditEntry{Time: now, JobID: j.ID, Event: EventReceived,
			Signer: j.Signer, Docs: j.Digests}); err != nil {
			return err
		}
		if ready {
			if err := s.move(tx, d, &j, Change{To: Ready}); err != nil {
				return err
			}
		}
		out, created = j, true
		return nil
	})
	if err != nil {
		return Job{}, false, fmt.Errorf("insert job %s: %w", j.ID, err)
	}
	return out, created, nil
}

// Transition applies c to job id and returns the job as stored afterwards,
// without its envelope.
// A change the state machine forbids fails with *TransitionError; moving to
// Done also writes the job's Result to the outbox in the same transaction.
//
// A move from signing back to ready whose commit fails is not lost: the
// job is shown as ready from then on and the move is written with the
// next write that goes through (see Full). The caller still gets the
// error, and must not retry the move.
func (s *Store) Transition(ctx context.Context, id string, c Change) (Job, error) {
	var out Job
	o := &op{}
	o.fn = func(tx *bolt.Tx, d *delta) error {
		j, owed, err := s.owedJob(tx, []byte(id))
		if err != nil {
			return err
		}
		if owed {
			// Shown as ready: the change is checked from there, and the
			// move back to ready written first.
			if !CanTransition(Ready, c.To, c.Outcome) {
				return &TransitionError{ID: j.ID, From: Ready, To: c.To, Outcome: c.Outcome}
			}
			if err := s.settle(tx, d, &j); err != nil {
				return err
			}
		}
		from := j.State
		if err := s.move(tx, d, &j, c); err != nil {
			return err
		}
		if from == Signing && c.To == Ready {
			o.back = &putBack{id: j.ID, expires: j.ExpiresAt,
				move: owedMove{event: EventAbandoned, reason: c.Reason, at: j.UpdatedAt}}
		}
		out = j
		return nil
	}
	err := s.submitOp(ctx, o)
	if err != nil {
		return Job{}, fmt.Errorf("transition job %s: %w", id, err)
	}
	return out, nil
}

// move changes j as c asks, keeping indexes, outbox and audit log in step.
// All checks come before the first write (see op).
func (s *Store) move(tx *bolt.Tx, d *delta, j *Job, c Change) error {
	if !CanTransition(j.State, c.To, c.Outcome) {
		return &TransitionError{ID: j.ID, From: j.State, To: c.To, Outcome: c.Outcome}
	}
	now := s.opts.Now().UTC()
	from := j.State
	j.State, j.Outcome, j.Reason, j.UpdatedAt = c.To, c.Outcome, c.Reason, now
	event := map[State]Event{Ready: EventReady, Signing: EventSigning, Done: EventDone}[c.To]
	if from == Signing && c.To == Ready {
		event = EventAbandoned
	}
	if c.To == Done {
		seq, err := s.putResult(tx, d, &Result{JobID: j.ID, Outcome: c.Outcome, Reason: c.Reason,
			Payload: c.Payload, CreatedAt: now}, c.Hold)
		if err != nil {
			return err
		}
		j.ResultSeq = seq
	}
	if err := s.putJob(tx, j, from); err != nil {
		return err
	}
	d.move(from, c.To)
	if c.To == Done {
		d.left = append(d.left, j.ID)
	}
	if c.To == Ready {
		d.waiting(j.ExpiresAt)
	}
	return s.appendAudit(tx, &AuditEntry{Time: now, JobID: j.ID, Event: event, Signer: j.Signer,
		Docs: j.Digests, Outcome: c.Outcome, Reason: c.Reason})
}

// putJob writes j and moves its index entries from state from (0 for new).
// Only a new job's envelope is written: it never changes after.
func (s *Store) putJob(tx *bolt.Tx, j *Job, from State) error {
	id := []byte(j.ID)
	if from == 0 {
		if err := putBlob(tx.Bucket(bucketEnvelopes), id, j.Envelope); err != nil {
			return fmt.Errorf("put envelope: %w", err)
		}
	}
	if err := tx.Bucket(bucketJobs).Put(id, encodeJob(j)); err != nil {
		return fmt.Errorf("put job: %w", err)
	}
	byState := tx.Bucket(bucketByState)
	if from != 0 {
		if err := byState.Delete(stateKey(from, j.ID)); err != nil {
			return fmt.Errorf("index state: %w", err)
		}
	}
	if err := byState.Put(stateKey(j.State, j.ID), nil); err != nil {
		return fmt.Errorf("index state: %w", err)
	}
	active := j.State != Done
	if from == 0 || !active {
		if err := indexActive(tx, j, active); err != nil {
			return err
		}
	}
	return nil
}

// indexActive adds or removes j from the indexes that hold jobs not yet done.
func indexActive(tx *bolt.Tx, j *Job, add bool) error {
	type entry struct {
		bucket []byte
		key    []byte
	}
	var entries []entry
	if j.Signer != "" {
		entries = append(entries, entry{bucketBySigner, signerKey(j.Signer, j.ID)})
	}
	if !j.ExpiresAt.IsZero() {
		entries = append(entries, entry{bucketByExpiry, expiryKey(j)})
	}
	for _, e := range entries {
		b := tx.Bucket(e.bucket)
		var err error
		if add {
			err = b.Put(e.key, nil)
		} else {
			err = b.Delete(e.key)
		}
		if err != nil {
			return fmt.Errorf("index %s: %w", e.bucket, err)
		}
	}
	return nil
}

// Get returns the job with id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Job, error) { return s.load(ctx, id, true) }

// Head is Get without the envelope (Envelope is nil, EnvelopeSHA256 set):
// for a decision on the job's state, which never needs its documents.
func (s *Store) Head(ctx context.Context, id string) (Job, error) { return s.load(ctx, id, false) }

// load reads job id as shown: with any move still owed applied.
func (s *Store) load(ctx context.Context, id string, envelope bool) (Job, error) {
	owed := s.owedView()
	var j Job
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		j, err = loadJob(tx, []byte(id), envelope)
		return err
	})
	if err != nil {
		return Job{}, fmt.Errorf("get job %s: %w", id, err)
	}
	if m, ok := owed[id]; ok {
		m.apply(&j)
	}
	return j, nil
}

func getJob(tx *bolt.Tx, id []byte) (Job, error) { return loadJob(tx, id, true) }

// headJob is getJob without the envelope: what a state change needs.
func headJob(tx *bolt.Tx, id []byte) (Job, error) { return loadJob(tx, id, false) }

func loadJob(tx *bolt.Tx, id []byte, envelope bool) (Job, error) {
	raw := tx.Bucket(bucketJobs).Get(id)
	if raw == nil {
		return Job{}, ErrNotFound
	}
	j, inline, err := decodeJobWith(raw, envelope)
	if err != nil || inline || !envelope {
		return j, err
	}
	// A file opened read-only keeps its schema: bucketEnvelopes may be
	// missing, and then so is every envelope.
	var env []byte
	if b := tx.Bucket(bucketEnvelopes); b != nil {
		if env, err = getBlob(b, id); err != nil {
			return Job{}, err
		}
	}
	if env == nil {
		return Job{}, &DecodeError{Kind: "job", Reason: "envelope " + string(id) + " missing"}
	}
	j.Envelope = env
	return j, nil
}

// ByState returns up to limit jobs in state st (limit <= 0: all), in id order.
func (s *Store) ByState(ctx context.Context, st State, limit int) ([]Job, error) {
	return s.scan(ctx, bucketByState, []byte{byte(st)}, nil, limit, true)
}

// ByStateHeads is ByState without the envelopes (Envelope is nil): cheap
// with many large jobs waiting.
func (s *Store) ByStateHeads(ctx context.Context, st State, limit int) ([]Job, error) {
	return s.scan(ctx, bucketByState, []byte{byte(st)}, nil, limit, false)
}

// BySigner returns up to limit jobs not yet done that are addressed to the
// signer with certificate SHA-256 signer (lowercase hex), in id order.
func (s *Store) BySigner(ctx context.Context, signer string, limit int) ([]Job, error) {
	return s.scan(ctx, bucketBySigner, append([]byte(signer), 0), nil, limit, true)
}

// BySignerHeads is BySigner without the envelopes (Envelope is nil), for
// lists that a page refreshes often.
func (s *Store) BySignerHeads(ctx context.Context, signer string, limit int) ([]Job, error) {
	return s.scan(ctx, bucketBySigner, append([]byte(signer), 0), nil, limit, false)
}

// ExpiringBefore returns up to limit jobs not yet done whose expiry is
// before t, oldest expiry first.
func (s *Store) ExpiringBefore(ctx context.Context, t time.Time, limit int) ([]Job, error) {
	if t.UnixNano() <= 0 {
		return nil, nil
	}
	return s.scan(ctx, bucketByExpiry, nil, u64(uint64(t.UnixNano())), limit, true)
}

// scan walks an index from prefix (or from the start up to end, exclusive)
// and loads the jobs; the id is the key's tail after prefix or the 8-byte
// time. A job owed its move back to ready (owedMove) is shown ready: it is
// left out of the signing state index's list and added to the ready one's.
func (s *Store) scan(ctx context.Context, index, prefix, end []byte, limit int, envelope bool) ([]Job, error) {
	owed := s.owedView()
	byState := bytes.Equal(index, bucketByState) && len(prefix) == 1
	var out []Job
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(index).Cursor()
		k, _ := c.Seek(prefix)
		for ; k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Next() {
			var id []byte
			if end != nil {
				if len(k) < 8 || bytes.Compare(k[:8], end) >= 0 {
					break
				}
				id = k[8:]
			} else {
				if !bytes.HasPrefix(k, prefix) {
					break
				}
				id = k[len(prefix):]
			}
			j, err := loadJob(tx, id, envelope)
			if err != nil {
				return fmt.Errorf("index %s entry %q: %w", index, id, err)
			}
			if m, ok := owed[j.ID]; ok && j.State == Signing {
				if byState {
					continue // listed as ready
				}
				m.apply(&j)
			}
			out = append(out, j)
		}
		if !byState || State(prefix[0]) != Ready || len(owed) == 0 {
			return nil
		}
		for id, m := range owed {
			j, err := loadJob(tx, []byte(id), envelope)
			if err != nil || j.State != Signing {
				continue // moved already
			}
			m.apply(&j)
			out = append(out, j)
		}
		slices.SortFunc(out, func(a, b Job) int { return strings.Compare(a.ID, b.ID) })
		if limit > 0 && len(out) > limit {
			out = out[:limit]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", index, err)
	}
	return out, nil
}
