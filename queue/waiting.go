package queue

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OldestWaiting returns how long the oldest job not yet done has waited
// since it was received, or 0 when none waits. It reads only the head of
// each record, never an envelope, so a scrape stays cheap with many large
// jobs waiting.
func (s *Store) OldestWaiting(ctx context.Context) (time.Duration, error) {
	var oldest time.Time
	err := s.view(ctx, func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		c := tx.Bucket(bucketByState).Cursor()
		for _, st := range []State{Received, Ready, Signing} {
			prefix := []byte{byte(st)}
			for k, _ := c.Seek(prefix); k != nil && k[0] == byte(st); k, _ = c.Next() {
				raw := jobs.Get(k[1:])
				if raw == nil {
					continue
				}
				at, err := receivedAt(raw)
				if err != nil {
					return err
				}
				if oldest.IsZero() || at.Before(oldest) {
					oldest = at
				}
			}
		}
		return nil
	})
	if err != nil || oldest.IsZero() {
		return 0, err
	}
	return s.opts.Now().Sub(oldest), nil
}

// receivedAt decodes a job record only up to its arrival time.
func receivedAt(b []byte) (time.Time, error) {
	d := decoder{b: b, kind: "job"}
	d.versionIn(jobVersionInline, jobVersion)
	for range 5 { // id, terminal, signer, meta, envelope or its SHA-256
		d.skip()
	}
	d.digests()
	at := d.time()
	if d.err != "" {
		return time.Time{}, &DecodeError{Kind: d.kind, Reason: d.err}
	}
	return at, nil
}

// skip passes over one length-prefixed field without copying it.
func (d *decoder) skip() {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail("length beyond end of record")
		return
	}
	d.b = d.b[n:]
}
