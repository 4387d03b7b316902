package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sweepBatch bounds the jobs expired or pruned in one transaction.
const sweepBatch = 512

// sweepLoop expires jobs at Open, whenever the soonest expiry of a job
// waiting passes, and every SweepInterval, when it also prunes; until
// Close.
func (s *Store) sweepLoop() {
	defer s.done.Done()
	tick := time.NewTicker(s.opts.SweepInterval)
	defer tick.Stop()
	timer := time.NewTimer(0) // the sweep at Open
	defer timer.Stop()
	ctx := s.ctx
	failed := false // the last sweep failed: wait for a write to go through
	for {
		prune := false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			prune = true
		case <-timer.C:
		case <-s.rearm:
			failed = false
			s.armSweep(ctx, timer, failed)
			continue
		}
		n, err := s.Sweep(ctx)
		failed = err != nil
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !isFull(err): // no room is logged once, by the committer
			s.log.Warn("sweep expired jobs", "err", err)
		case n > 0:
			s.log.Info("expired jobs", "count", n)
		}
		if prune {
			if p, err := s.Prune(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				if !isFull(err) {
					s.log.Warn("prune", "err", err)
				}
			} else if p.Jobs+p.Results+p.GuardsKept+p.GuardsPruned > 0 {
				s.log.Info("pruned", "jobs", p.Jobs, "results", p.Results,
					"replay_guards_kept", p.GuardsKept, "replay_guards_pruned", p.GuardsPruned)
			}
		}
		s.armSweep(ctx, timer, failed)
	}
}

// armSweep sets timer to the soonest expiry of a job waiting. After a
// failed sweep an expiry already past waits for the period or for a write
// that goes through (rearm), so a full store is not swept in a loop.
func (s *Store) armSweep(ctx context.Context, timer *time.Timer, failed bool) {
	stopTimer(timer)
	s.expMu.Lock()
	s.armedAt = time.Time{} // meanwhile every expiring job wakes the sweeper
	s.expMu.Unlock()
	due, err := s.nextExpiry(ctx)
	if err != nil || due.IsZero() {
		return
	}
	wait := due.Sub(s.opts.Now())
	s.expMu.Lock()
	s.armedAt = due
	s.expMu.Unlock()
	if wait <= 0 && failed {
		return
	}
	timer.Reset(max(wait, 0))
}

func stopTimer(t *time.Timer) {
	t.Stop()
	select { // a timer that fired unseen
	case <-t.C:
	default:
	}
}

// noteExpiry wakes the sweeper for a job that became received or ready
// with expiry t, when t is sooner than what it waits for.
func (s *Store) noteExpiry(t time.Time) {
	s.expMu.Lock()
	sooner := s.armedAt.IsZero() || t.Before(s.armedAt)
	s.expMu.Unlock()
	if sooner {
		s.rearmSweep()
	}
}

func (s *Store) rearmSweep() {
	select {
	case s.rearm <- struct{}{}:
	default:
	}
}

// nextExpiry is the soonest ExpiresAt of a job the sweeper may expire
// (received or ready, or owed its move back to ready), zero when none has
// one. The jobs in signing it passes over are at most one batch's.
func (s *Store) nextExpiry(ctx context.Context) (time.Time, error) {
	owed := s.owedView()
	var due time.Time
	err := s.view(ctx, func(tx *bolt.Tx) error {
		byState := tx.Bucket(bucketByState).Cursor()
		c := tx.Bucket(bucketByExpiry).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) <= 8 {
				continue
			}
			id := k[8:]
			if _, ok := owed[string(id)]; !ok && seekHas(byState, stateKey(Signing, string(id))) {
				continue
			}
			due = time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])))
			return nil
		}
		return nil
	})
	return due, err
}

// seekHas reports whether the cursor's bucket holds key.
func seekHas(c *bolt.Cursor, key []byte) bool {
	k, _ := c.Seek(key)
	return bytes.Equal(k, key)
}

// Sweep moves every received or ready job whose expiry has passed to
// done(expired), writing its result to the outbox, and returns how many it
// moved. Jobs in signing are left to the signing flow. After each
// transaction that expired jobs it calls Options.OnExpired with them.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		now := s.opts.Now()
		if now.UnixNano() <= 0 {
			return total, nil
		}
		due, err := s.scan(ctx, bucketByExpiry, nil, u64(uint64(now.UnixNano()+1)), sweepBatch, false)
		if err != nil {
			return total, err
		}
		full := len(due) == sweepBatch
		due = slices.DeleteFunc(due, func(j Job) bool { return j.State == Signing })
		if len(due) == 0 {
			return total, nil // nothing to write: no commit
		}
		var expired []Job
		err = s.submit(ctx, false, func(tx *bolt.Tx, d *delta) error {
			expired = expired[:0]
			for i := range due {
				j, owed, err := s.owedJob(tx, []byte(due[i].ID))
				if err != nil || (j.State != Received && j.State != Ready && !owed) || j.ExpiresAt.After(now) {
					continue // gone, moved on or being signed since the read
				}
				if err := s.settle(tx, d, &j); err != nil {
					return err
				}
				var payload []byte
				if s.opts.ExpiryPayload != nil {
					payload = s.opts.ExpiryPayload(j)
				}
				if err := s.move(tx, d, &j, Change{To: Done, Outcome: Expired, Reason: "expired", Payload: payload}); err != nil {
					return err
				}
				expired = append(expired, j)
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("sweep: %w", err)
		}
		total += len(expired)
		if len(expired) > 0 && s.opts.OnExpired != nil {
			s.opts.OnExpired(expired)
		}
		if len(expired) == 0 || !full {
			return total, nil
		}
	}
}

// PruneStats counts what one Prune removed, and the replay guards it kept.
type PruneStats struct {
	Jobs         int
	Results      int
	GuardsKept   int // replay guards written for pruned jobs
	GuardsPruned int // replay guards removed because their Until passed
}

// Prune removes results delivered longer than Retention ago together with
// their done jobs. Undelivered results and their jobs stay however old they
// are; the audit log is never pruned (export it first to archive it).
//
// A pruned job leaves a replay guard behind unless its window is already
// over: its id, the SHA-256 of its envelope, and Until = ExpiresAt +
// ReplaySkew (zero, kept forever, for a job without an ExpiresAt). While
// the guard is kept, Insert refuses the id with *ReplayError, whatever
// envelope comes with it. Prune removes a guard once its Until is before
// now, never earlier (Retention does not apply to guards); after that a
// job with the same id is stored as a new job, which is right because the
// verifier refuses the old envelope as expired by then (if ReplaySkew is
// at least its skew), so only an envelope newly signed by the dispatcher
// can bring the id back.
//
// Each transaction prunes at most sweepBatch results and sweepBatch guards.
func (s *Store) Prune(ctx context.Context) (PruneStats, error) {
	var total PruneStats
	for {
		now := s.opts.Now()
		cutoff := now.Add(-s.opts.Retention)
		var p PruneStats
		more := false
		err := s.submit(ctx, false, func(tx *bolt.Tx, d *delta) error {
			p, more = PruneStats{}, false
			n, moreGuards, err := s.pruneGuards(tx, d, now, sweepBatch)
			p.GuardsPruned, more = n, moreGuards
			if err != nil {
				return err
			}
			c := tx.Bucket(bucketDelivery).Cursor()
			var keys [][]byte
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if len(k) != 16 || int64(binary.BigEndian.Uint64(k[:8])) >= cutoff.UnixNano() {
					break
				}
				if len(keys) == sweepBatch {
					more = true
					break
				}
				keys = append(keys, append([]byte(nil), k...))
			}
			for _, k := range keys {
				if err := s.pruneOne(tx, d, k, now, &p); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune: %w", err)
		}
		total.Jobs += p.Jobs
		total.Results += p.Results
		total.GuardsKept += p.GuardsKept
		total.GuardsPruned += p.GuardsPruned
		if !more {
			return total, nil
		}
	}
}

func (s *Store) pruneOne(tx *bolt.Tx, d *delta, dk []byte, now time.Time, p *PruneStats) error {
	if err := tx.Bucket(bucketDelivery).Delete(dk); err != nil {
		return err
	}
	key := dk[8:]
	r, err := headResult(tx, key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketOutbox).Delete(key); err != nil {
		return err
	}
	if err := deleteBlob(tx.Bucket(bucketPayloads), key); err != nil {
		return err
	}
	p.Results++
	raw := tx.Bucket(bucketJobs).Get([]byte(r.JobID))
	if raw == nil {
		return nil // job already gone
	}
	j, _, err := decodeJobWith(raw, false)
	if err != nil || j.State != Done || j.ResultSeq != r.Seq {
		return nil // a later job reused the id
	}
	kept, err := s.guardJob(tx, d, &j, now)
	if err != nil {
		return err
	}
	if kept {
		p.GuardsKept++
	}
	if err := tx.Bucket(bucketJobs).Delete([]byte(j.ID)); err != nil {
		return err
	}
	if err := deleteBlob(tx.Bucket(bucketEnvelopes), []byte(j.ID)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketByState).Delete(stateKey(Done, j.ID)); err != nil {
		return err
	}
	d.move(Done, 0)
	p.Jobs++
	return nil
}

// reasonRecovered is the reason of a job moved back to ready on Open.
const reasonRecovered = "recovered after restart"

// recoverSigning runs once on Open: a job found in signing was never
// signed (the result would have moved it to done in the same transaction),
// so it goes back to ready and the audit log says why.
func (s *Store) recoverSigning(tx *bolt.Tx) error {
	var ids []string
	c := tx.Bucket(bucketByState).Cursor()
	prefix := []byte{byte(Signing)}
	for k, _ := c.Seek(prefix); k != nil && k[0] == byte(Signing); k, _ = c.Next() {
		ids = append(ids, string(k[1:]))
	}
	for _, id := range ids {
		j, err := headJob(tx, []byte(id))
		if err != nil {
			return fmt.Errorf("recover job %s: %w", id, err)
		}
		from := j.State
		j.State, j.UpdatedAt, j.Reason = Ready, s.opts.Now().UTC(), reasonRecovered
		if err := s.putJob(tx, &j, from); err != nil {
			return err
		}
		if err := s.appendAudit(tx, &AuditEntry{JobID: j.ID, Event: EventRecovered, Signer: j.Signer,
			Docs: j.Digests, Reason: j.Reason}); err != nil {
			return err
		}
		s.log.Warn("job was signing at shutdown; back to ready", "job", id)
	}
	return nil
}
