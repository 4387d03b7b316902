package queue

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// AckResults records, in one transaction, that the central side has
// stored the results of the jobs ids (a ResultAcks): each result held and
// not yet acknowledged is marked delivered. Ids of jobs the store does not
// hold, of jobs without a result yet, or whose result was acknowledged
// before change nothing. It returns how many results it marked.
func (s *Store) AckResults(ctx context.Context, ids []string) (int, error) {
	// marked is written by the committer and read only after submit
	// returned nil (see AckResult); a retried transaction starts it again.
	var marked int
	err := s.submit(ctx, false, func(tx *bolt.Tx, d *delta) error {
		marked = 0
		for _, id := range ids {
			j, err := loadJob(tx, []byte(id), false)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("job %s: %w", id, err)
			}
			if j.ResultSeq == 0 {
				continue
			}
			first, err := s.markDelivered(tx, d, j.ResultSeq)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("job %s: %w", id, err)
			}
			if first {
				marked++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("acknowledge %d results: %w", len(ids), err)
	}
	return marked, nil
}
