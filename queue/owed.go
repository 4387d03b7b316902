package queue

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// owedMove is a move from signing back to ready that the store owes a job
// because it could not write it: the put-back after a failed signing
// (Transition to Ready) whose commit failed, or the recovery at Open when
// the file had no room for it. Until it is written the job is in signing in
// the file but ready everywhere the store shows it — Get, ByState, BySigner,
// ExpiringBefore, Stats — and every write that touches the job writes the
// move first, in the same transaction, with the audit entry it would have
// had. After each commit that goes through, the committer writes the moves
// still owed (repairOwed); a restart owes them again through the recovery
// at Open. So no job is ever left in signing: it can be signed again as
// soon as there is room, and is shown as waiting meanwhile.
type owedMove struct {
	event  Event // EventAbandoned or EventRecovered
	reason string
	at     time.Time // when the move was asked for
}

// apply shows j, as read from the file, with the move made.
func (m owedMove) apply(j *Job) {
	if j.State == Signing {
		j.State, j.Reason, j.UpdatedAt = Ready, m.reason, m.at
	}
}

// putBack is what a failed put-back leaves owed.
type putBack struct {
	id      string
	move    owedMove
	expires time.Time
}

// owe records moves the committer could not write; only the committer (or
// Open, before it starts) calls it. The counters show the jobs as ready
// from now on; writing the move later changes no counter.
func (s *Store) owe(backs ...putBack) {
	s.owedMu.Lock()
	if s.owed == nil {
		s.owed = make(map[string]owedMove)
	}
	added := 0
	for _, b := range backs {
		if _, ok := s.owed[b.id]; !ok {
			added++
		}
		s.owed[b.id] = b.move
	}
	s.owedMu.Unlock()
	s.counts[Signing].Add(-int64(added))
	s.counts[Ready].Add(int64(added))
	for _, b := range backs {
		if !b.expires.IsZero() {
			s.noteExpiry(b.expires)
		}
	}
}

// paid forgets the moves a committed transaction wrote.
func (s *Store) paid(ids []string) {
	if len(ids) == 0 {
		return
	}
	s.owedMu.Lock()
	for _, id := range ids {
		delete(s.owed, id)
	}
	s.owedMu.Unlock()
}

// owedMoveOf returns the move owed to job id, if any.
func (s *Store) owedMoveOf(id string) (owedMove, bool) {
	s.owedMu.Lock()
	defer s.owedMu.Unlock()
	m, ok := s.owed[id]
	return m, ok
}

func (s *Store) owedCount() int {
	s.owedMu.Lock()
	defer s.owedMu.Unlock()
	return len(s.owed)
}

// owedView is a copy of the owed moves, nil when there are none. A reader
// takes it before its read transaction begins: a move is forgotten only
// after the transaction that wrote it committed, so a job the copy names
// is either still in signing in the snapshot (and shown ready) or ready
// already.
func (s *Store) owedView() map[string]owedMove {
	s.owedMu.Lock()
	defer s.owedMu.Unlock()
	if len(s.owed) == 0 {
		return nil
	}
	out := make(map[string]owedMove, len(s.owed))
	for id, m := range s.owed {
		out[id] = m
	}
	return out
}

// settle writes the move owed to j, if any, and leaves j ready. Callers
// check that what they do next is allowed from ready before they call it.
func (s *Store) settle(tx *bolt.Tx, d *delta, j *Job) error {
	m, ok := s.owedMoveOf(j.ID)
	if !ok || j.State != Signing {
		return nil
	}
	now := s.opts.Now().UTC()
	j.State, j.Reason, j.UpdatedAt = Ready, m.reason, now
	if err := s.putJob(tx, j, Signing); err != nil {
		return err
	}
	if err := s.appendAudit(tx, &AuditEntry{Time: now, JobID: j.ID, Event: m.event, Signer: j.Signer,
		Docs: j.Digests, Reason: m.reason}); err != nil {
		return err
	}
	d.paid = append(d.paid, j.ID)
	return nil
}

// owedJob reads job id for a write: a job owed its move back to ready is
// seen as ready (owed true), so the state machine is checked from there.
func (s *Store) owedJob(tx *bolt.Tx, id []byte) (j Job, owed bool, err error) {
	j, err = headJob(tx, id)
	if err != nil {
		return j, false, err
	}
	_, owed = s.owedMoveOf(j.ID)
	return j, owed && j.State == Signing, nil
}

// repairOwed writes, in one transaction of its own, every move still owed.
// The committer calls it after a commit went through; one that finds no
// room leaves the moves owed for the next.
func (s *Store) repairOwed() {
	if !s.repairDue {
		return
	}
	s.repairDue = false
	ids := slices.Sorted(maps.Keys(s.owedView()))
	if len(ids) == 0 {
		return
	}
	o := &op{done: make(chan struct{}), fn: func(tx *bolt.Tx, d *delta) error {
		for _, id := range ids {
			j, err := headJob(tx, []byte(id))
			if err != nil || j.State != Signing {
				d.paid = append(d.paid, id) // nothing left to move
				continue
			}
			if err := s.settle(tx, d, &j); err != nil {
				return fmt.Errorf("job %s: %w", id, err)
			}
		}
		return nil
	}}
	err := s.run([]*op{o}, s.opts.MaxSize)
	if err == nil {
		err = o.err
	}
	if err == nil {
		s.log.Info("jobs left in signing are back to ready", "jobs", strings.Join(ids, ","))
	} else if !isFull(err) {
		s.log.Error("write jobs back to ready", "jobs", strings.Join(ids, ","), "err", err)
	}
}
