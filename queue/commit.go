package queue

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxBatch bounds one transaction so a burst cannot build an unbounded
// dirty set in memory; what is left waits for the next commit.
const maxBatch = 4096

// op is one caller's unit of work in a group commit. fn must do all its
// checks before its first write: when it returns an error it must have
// written nothing, so the transaction can go on for the others.
type op struct {
	fn     func(tx *bolt.Tx, d *delta) error
	insert bool // refused with ErrFull at the soft cap
	err    error
	done   chan struct{}
	// back is set by fn when it moved a job from signing to ready: if the
	// commit fails, the store owes the job that move (see owedMove).
	back *putBack
}

// delta is what a transaction changes in the in-memory state; it is
// applied only once the transaction is durable.
type delta struct {
	states      [Done + 1]int64
	undelivered int64
	held        int64
	guards      int64
	created     int       // new jobs stored
	paid        []string  // owed moves written
	expiry      time.Time // soonest expiry of a job that became received or ready
	// arrived is the earliest arrival of a job stored; left lists the jobs
	// that stopped waiting (moved to done): see oldestWaiting.
	arrived arrival
	left    []string
}

// waiting notes that a job with expiry t became received or ready, so the
// sweeper is woken for it once the transaction is durable.
func (d *delta) waiting(t time.Time) {
	if !t.IsZero() && (d.expiry.IsZero() || t.Before(d.expiry)) {
		d.expiry = t
	}
}

// arrive notes that job id, received at t, was stored.
func (d *delta) arrive(id string, t time.Time) { d.arrived.keepEarlier(arrival{t, id}) }

func (d *delta) move(from, to State) {
	if from != 0 {
		d.states[from]--
	}
	if to != 0 {
		d.states[to]++
	}
}

// submit queues fn for the next group commit and waits until it is durable.
// If ctx ends first the work may still commit; callers retry idempotently.
func (s *Store) submit(ctx context.Context, insert bool, fn func(tx *bolt.Tx, d *delta) error) error {
	return s.submitOp(ctx, &op{fn: fn, insert: insert})
}

// submitOp is submit for an op whose fn refers to the op itself.
func (s *Store) submitOp(ctx context.Context, o *op) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	o.done = make(chan struct{})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.queue = append(s.queue, o)
	s.mu.Unlock()
	s.signal()
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return fmt.Errorf("waiting for commit (outcome unknown): %w", ctx.Err())
	}
}

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// commitLoop takes everything queued into one transaction. There is no
// artificial delay: an idle store commits a lone write at once, a busy one
// gathers whatever queued during the previous fsync.
func (s *Store) commitLoop() {
	defer s.done.Done()
	for {
		s.mu.Lock()
		batch := s.queue
		if len(batch) > maxBatch {
			batch, s.queue = batch[:maxBatch:maxBatch], batch[maxBatch:]
		} else {
			s.queue = nil
		}
		closed := s.closed
		s.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-s.wake
			continue
		}
		s.commit(batch)
	}
}

func (s *Store) commit(batch []*op) {
	err := s.run(batch, s.softMax(batch))
	if isFull(err) && len(batch) > 1 {
		// Retry one by one so what still fits (transitions, deliveries,
		// pruning use the reserve) is not refused along with the inserts.
		for _, o := range batch {
			s.settleOps([]*op{o}, s.run([]*op{o}, s.softMax([]*op{o})))
		}
	} else {
		s.settleOps(batch, err)
	}
	// Before the callers hear back: when a write returns, Full already
	// says what it and the repair after it found.
	s.repairOwed()
	s.publishRoom()
	for _, o := range batch {
		close(o.done)
	}
}

// settleOps gives the ops of a failed commit its error. A put-back among
// them leaves its move owed.
func (s *Store) settleOps(ops []*op, err error) {
	if err == nil {
		return
	}
	for _, o := range ops {
		o.err = err
		if o.back != nil {
			s.owe(*o.back)
			s.log.Warn("job could not be written back to ready; shown as ready, written once a write goes through",
				"job", o.back.id, "err", err)
		}
	}
}

// softMax is the size cap for a transaction: inserts may not eat into the
// last eighth, which is kept so a full store can still drain and prune.
func (s *Store) softMax(batch []*op) int {
	if s.opts.MaxSize <= 0 {
		return 0
	}
	if hasInsert(batch) {
		return s.opts.MaxSize - s.opts.MaxSize/8
	}
	return s.opts.MaxSize
}

func hasInsert(batch []*op) bool {
	for _, o := range batch {
		if o.insert {
			return true
		}
	}
	return false
}

// run executes batch in one durable transaction. Only the committer
// goroutine writes, so setting db.MaxSize here races with nothing. A
// commit that finds no room (the cap or a full filesystem) fails with
// ErrFull and is not logged: the room state is, once per change (see
// publishRoom).
func (s *Store) run(batch []*op, limit int) error {
	s.db.MaxSize = limit
	var d delta
	for _, o := range batch {
		o.back = nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, o := range batch {
			o.err = o.fn(tx, &d)
		}
		return nil
	})
	if err != nil {
		if cause := roomCause(err, limit, s.opts.MaxSize); cause != "" {
			s.refused(hasInsert(batch), cause)
			return fmt.Errorf("commit: %w: %w", ErrFull, err)
		}
		s.log.Error("commit failed", "err", err)
		return fmt.Errorf("commit: %w", err)
	}
	for st := range d.states {
		if d.states[st] != 0 {
			s.counts[st].Add(d.states[st])
		}
	}
	s.undelivered.Add(d.undelivered)
	s.held.Add(d.held)
	s.guards.Add(d.guards)
	s.commits.Add(1)
	s.paid(d.paid)
	s.fitted(d.created > 0)
	if s.owedCount() > 0 {
		s.repairDue = true
	}
	if !d.expiry.IsZero() {
		s.noteExpiry(d.expiry)
	}
	s.oldest.apply(&d)
	return nil
}
