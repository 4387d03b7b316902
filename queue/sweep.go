package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sweepBatch bounds the jobs expired or pruned in one transaction.
const sweepBatch = 512

// sweepLoop expires and prunes every SweepInterval until Close.
func (s *Store) sweepLoop() {
	defer s.done.Done()
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	ctx := s.ctx
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.Sweep(ctx); err != nil {
			s.log.Warn("sweep expired jobs", "err", err)
		} else if n > 0 {
			s.log.Info("expired jobs", "count", n)
		}
		if p, err := s.Prune(ctx); err != nil {
			s.log.Warn("prune", "err", err)
		} else if p.Jobs+p.Results+p.GuardsKept+p.GuardsPruned > 0 {
			s.log.Info("pruned", "jobs", p.Jobs, "results", p.Results,
				"replay_guards_kept", p.GuardsKept, "replay_guards_pruned", p.GuardsPruned)
		}
	}
}

// Sweep moves every received or ready job whose expiry has passed to
// done(expired), writing its result to the outbox, and returns how many it
// moved. Jobs in signing are left to the signing flow.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		now := s.opts.Now()
		due, err := s.ExpiringBefore(ctx, now.Add(time.Nanosecond), sweepBatch)
		if err != nil {
			return total, err
		}
		n := 0
		err = s.submit(ctx, false, func(tx *bolt.Tx, d *delta) error {
			n = 0
			for i := range due {
				j, err := getJob(tx, []byte(due[i].ID))
				if err != nil || (j.State != Received && j.State != Ready) || j.ExpiresAt.After(now) {
					continue // gone, moved on or being signed since the read
				}
				var payload []byte
				if s.opts.ExpiryPayload != nil {
					payload = s.opts.ExpiryPayload(j)
				}
				if err := s.move(tx, d, &j, Change{To: Done, Outcome: Expired, Reason: "expired", Payload: payload}); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("sweep: %w", err)
		}
		total += n
		if n == 0 || len(due) < sweepBatch {
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
	r, err := getResult(tx, key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketOutbox).Delete(key); err != nil {
		return err
	}
	p.Results++
	raw := tx.Bucket(bucketJobs).Get([]byte(r.JobID))
	if raw == nil {
		return nil // job already gone
	}
	j, err := decodeJobWith(raw, false)
	if err != nil || j.State != Done || j.ResultSeq != r.Seq {
		return nil // a later job reused the id
	}
	kept, err := s.guardJob(tx, d, &j, raw, now)
	if err != nil {
		return err
	}
	if kept {
		p.GuardsKept++
	}
	if err := tx.Bucket(bucketJobs).Delete([]byte(j.ID)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketByState).Delete(stateKey(Done, j.ID)); err != nil {
		return err
	}
	d.move(Done, 0)
	p.Jobs++
	return nil
}

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
		j, err := getJob(tx, []byte(id))
		if err != nil {
			return fmt.Errorf("recover job %s: %w", id, err)
		}
		from := j.State
		j.State, j.UpdatedAt, j.Reason = Ready, s.opts.Now().UTC(), "recovered after restart"
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
