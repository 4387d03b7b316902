package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// putResult appends r to the outbox with the next sequence and marks it
// pending, or held when hold.
func (s *Store) putResult(tx *bolt.Tx, d *delta, r *Result, hold bool) (uint64, error) {
	seq, err := nextSeq(tx, keyOutboxSeq)
	if err != nil {
		return 0, err
	}
	r.Seq = seq
	key := u64(seq)
	if err := putBlob(tx.Bucket(bucketPayloads), key, r.Payload); err != nil {
		return 0, fmt.Errorf("put result payload: %w", err)
	}
	if err := tx.Bucket(bucketOutbox).Put(key, encodeResult(r)); err != nil {
		return 0, fmt.Errorf("put result: %w", err)
	}
	if hold {
		if err := tx.Bucket(bucketHeld).Put(key, nil); err != nil {
			return 0, fmt.Errorf("put held: %w", err)
		}
		d.held++
		return seq, nil
	}
	if err := tx.Bucket(bucketPending).Put(key, nil); err != nil {
		return 0, fmt.Errorf("put pending: %w", err)
	}
	d.undelivered++
	return seq, nil
}

func getResult(tx *bolt.Tx, key []byte) (Result, error) { return loadResult(tx, key, true) }

// headResult is getResult without the payload: what bookkeeping needs.
func headResult(tx *bolt.Tx, key []byte) (Result, error) { return loadResult(tx, key, false) }

func loadResult(tx *bolt.Tx, key []byte, payload bool) (Result, error) {
	raw := tx.Bucket(bucketOutbox).Get(key)
	if raw == nil {
		return Result{}, ErrNotFound
	}
	r, inline, err := decodeResultWith(raw, payload)
	if err != nil || inline || !payload {
		return r, err
	}
	// A file opened read-only keeps its schema: see loadJob.
	if b := tx.Bucket(bucketPayloads); b != nil {
		if r.Payload, err = getBlob(b, key); err != nil {
			return Result{}, err
		}
	}
	if r.Payload == nil {
		return Result{}, &DecodeError{Kind: "result", Reason: fmt.Sprintf("payload of %d missing", r.Seq)}
	}
	return r, nil
}

// Undelivered returns up to limit results not yet acknowledged with a
// sequence greater than after, oldest first. A publisher drains by passing
// the last sequence it sent as after (0 to start from the oldest).
func (s *Store) Undelivered(ctx context.Context, after uint64, limit int) ([]Result, error) {
	out, err := s.resultsIn(ctx, bucketPending, after, limit)
	if err != nil {
		return nil, fmt.Errorf("undelivered results: %w", err)
	}
	return out, nil
}

// resultsIn returns up to limit results whose sequences index holds,
// greater than after, oldest first; none when index is absent (a file of
// an older schema opened read-only).
func (s *Store) resultsIn(ctx context.Context, index []byte, after uint64, limit int) ([]Result, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []Result
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(index)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, _ = c.Next() {
			r, err := getResult(tx, k)
			if err != nil {
				return fmt.Errorf("result %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Result returns the outbox entry with sequence seq, or ErrNotFound.
func (s *Store) Result(ctx context.Context, seq uint64) (Result, error) {
	var r Result
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		r, err = getResult(tx, u64(seq))
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("result %d: %w", seq, err)
	}
	return r, nil
}

// MarkDelivered records that the central side acknowledged result seq; the
// result is then kept for the retention period. It is idempotent: a result
// already delivered (or delivered and pruned) is not an error. A sequence
// never issued is ErrNotFound.
func (s *Store) MarkDelivered(ctx context.Context, seq uint64) error {
	err := s.submit(ctx, false, func(tx *bolt.Tx, d *delta) error {
		_, err := s.markDelivered(tx, d, seq)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark result %d delivered: %w", seq, err)
	}
	return nil
}

// AckResult records the central side's acknowledgement of the result of
// job id, in one transaction that reads only the job's head (never its
// envelope or documents). It reports whether this acknowledgement was the
// first; an acknowledgement again, or for a result delivered and pruned,
// is not an error. A job the store does not hold is ErrNotFound; a job
// that has no result yet (it is still waiting or being signed) is
// ErrNoResult.
func (s *Store) AckResult(ctx context.Context, id string) (bool, error) {
	// first is written by the committer; it is read only after submit
	// returned nil, which orders the two (a submit that gives up early
	// may leave the transaction still running, so no result variable of
	// this function may be written inside it).
	var first bool
	err := s.submit(ctx, false, func(tx *bolt.Tx, d *delta) error {
		j, err := loadJob(tx, []byte(id), false)
		if err != nil {
			return err
		}
		if j.ResultSeq == 0 {
			return ErrNoResult
		}
		f, err := s.markDelivered(tx, d, j.ResultSeq)
		first = f
		return err
	})
	if err != nil {
		return false, fmt.Errorf("acknowledge result of %s: %w", id, err)
	}
	return first, nil
}

// markDelivered marks result seq delivered and reports whether it was
// pending until now.
func (s *Store) markDelivered(tx *bolt.Tx, d *delta, seq uint64) (bool, error) {
	key := u64(seq)
	r, err := headResult(tx, key)
	if errors.Is(err, ErrNotFound) {
		last, err := getUint(tx.Bucket(bucketMeta), keyOutboxSeq)
		if err != nil || seq == 0 || seq > last {
			return false, ErrNotFound
		}
		return false, nil // delivered and pruned
	}
	if err != nil || !r.DeliveredAt.IsZero() {
		return false, err
	}
	if b := tx.Bucket(bucketHeld); b != nil && b.Get(key) != nil {
		// Never sent, so an acknowledgement of it is not of this result.
		return false, nil
	}
	r.DeliveredAt = s.opts.Now().UTC()
	if err := tx.Bucket(bucketOutbox).Put(key, encodeResult(&r)); err != nil {
		return false, fmt.Errorf("put result: %w", err)
	}
	if err := tx.Bucket(bucketPending).Delete(key); err != nil {
		return false, fmt.Errorf("delete pending: %w", err)
	}
	dk := append(u64(uint64(r.DeliveredAt.UnixNano())), key...)
	if err := tx.Bucket(bucketDelivery).Put(dk, nil); err != nil {
		return false, fmt.Errorf("index delivered: %w", err)
	}
	d.undelivered--
	return true, nil
}
