package queue

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// HeldResults returns up to limit results held back from the outbox
// (Change.Hold), oldest first.
func (s *Store) HeldResults(ctx context.Context, limit int) ([]Result, error) {
	out, err := s.resultsIn(ctx, bucketHeld, 0, limit)
	if err != nil {
		return nil, fmt.Errorf("held results: %w", err)
	}
	return out, nil
}

// ReleaseResult lets a held result go to the outbox, with payload in place
// of the one it was stored with when payload is not nil, in one
// transaction: a crash leaves it either held as it was or pending as
// released. It takes the next sequence, as a result stored now would, so
// that a publisher that drains by sequence sends it next; its job names
// the new one. A result that is not held is ErrNotFound.
func (s *Store) ReleaseResult(ctx context.Context, seq uint64, payload []byte) error {
	err := s.submit(ctx, false, func(tx *bolt.Tx, d *delta) error {
		old := u64(seq)
		held := tx.Bucket(bucketHeld)
		if held.Get(old) == nil {
			return ErrNotFound
		}
		r, err := getResult(tx, old)
		if err != nil {
			return err
		}
		j, err := loadJob(tx, []byte(r.JobID), false)
		if err != nil {
			return fmt.Errorf("job of result %d: %w", seq, err)
		}
		if payload != nil {
			r.Payload = payload
		}
		for _, del := range []func() error{
			func() error { return held.Delete(old) },
			func() error { return tx.Bucket(bucketOutbox).Delete(old) },
			func() error { return deleteBlob(tx.Bucket(bucketPayloads), old) },
		} {
			if err := del(); err != nil {
				return fmt.Errorf("release result %d: %w", seq, err)
			}
		}
		next, err := s.putResult(tx, d, &r, false)
		if err != nil {
			return err
		}
		d.held--
		j.ResultSeq = next
		return s.putJob(tx, &j, j.State)
	})
	if err != nil {
		return fmt.Errorf("release result %d: %w", seq, err)
	}
	return nil
}
