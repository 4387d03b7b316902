package queue

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Replay guards. A done job pruned after the retention period leaves a
// guard behind: its id, the SHA-256 of its envelope and the time until
// which the envelope could still be accepted, ExpiresAt + ReplaySkew (the
// verifier takes an envelope until ExpiresAt plus its skew). While the
// guard is kept Insert refuses the id with *ReplayError, so a replayed
// envelope is never stored, shown or signed a second time. A guard whose
// Until has passed is removed by Prune, never earlier; a job without an
// ExpiresAt leaves a guard that is kept forever.

// guardUntil is how long the guard of j must be kept; zero means forever.
func (s *Store) guardUntil(j *Job) time.Time {
	if j.ExpiresAt.IsZero() {
		return time.Time{}
	}
	skew := s.opts.ReplaySkew
	if j.ExpiresAt.UnixNano() > math.MaxInt64-int64(skew) {
		return time.Time{} // beyond what a time index can hold: forever
	}
	return j.ExpiresAt.Add(skew).UTC()
}

// guardJob writes the replay guard of the done job j if its envelope could
// still be accepted at now, and reports whether it did.
func (s *Store) guardJob(tx *bolt.Tx, d *delta, j *Job, now time.Time) (bool, error) {
	until := s.guardUntil(j)
	if !until.IsZero() && until.Before(now) {
		return false, nil // the window is over: a replay is refused as expired
	}
	g := guard{ID: j.ID, EnvelopeSHA256: j.EnvelopeSHA256, Until: until}
	return true, putGuard(tx, d, &g)
}

// putGuard stores g. A guard already kept for the id (which Insert makes
// impossible, but a file is not a proof) is replaced and its Until kept if
// it is the later one.
func putGuard(tx *bolt.Tx, d *delta, g *guard) error {
	guards, byUntil := tx.Bucket(bucketGuards), tx.Bucket(bucketByGuardUntil)
	if raw := guards.Get([]byte(g.ID)); raw != nil {
		old, err := decodeGuard(raw)
		if err != nil {
			return fmt.Errorf("guard %s: %w", g.ID, err)
		}
		if old.Until.IsZero() || (!g.Until.IsZero() && old.Until.After(g.Until)) {
			g.Until = old.Until
		}
		if !old.Until.IsZero() {
			if err := byUntil.Delete(guardUntilKey(&old)); err != nil {
				return fmt.Errorf("index guard: %w", err)
			}
		}
		d.guards--
	}
	if err := guards.Put([]byte(g.ID), encodeGuard(g)); err != nil {
		return fmt.Errorf("put guard: %w", err)
	}
	if !g.Until.IsZero() {
		if err := byUntil.Put(guardUntilKey(g), nil); err != nil {
			return fmt.Errorf("index guard: %w", err)
		}
	}
	d.guards++
	return nil
}

// checkGuard returns a *ReplayError if id has a replay guard, comparing
// the guard's hash with envelope. It writes nothing.
func checkGuard(tx *bolt.Tx, id string, envelope []byte) error {
	raw := tx.Bucket(bucketGuards).Get([]byte(id))
	if raw == nil {
		return nil
	}
	g, err := decodeGuard(raw)
	if err != nil {
		return fmt.Errorf("guard %s: %w", id, err)
	}
	return &ReplayError{ID: g.ID, EnvelopeSHA256: g.EnvelopeSHA256, Until: g.Until,
		SameEnvelope: Digest(sha256.Sum256(envelope)) == g.EnvelopeSHA256}
}

// pruneGuards removes up to limit guards whose Until is before now and
// reports how many it removed and whether more are due. A guard that does
// not decode is left where it is (so its id stays refused) but no longer
// indexed, so that it cannot stop pruning.
func (s *Store) pruneGuards(tx *bolt.Tx, d *delta, now time.Time, limit int) (int, bool, error) {
	guards, byUntil := tx.Bucket(bucketGuards), tx.Bucket(bucketByGuardUntil)
	var keys [][]byte
	more := false
	c := byUntil.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) < 8 || int64(binary.BigEndian.Uint64(k[:8])) >= now.UnixNano() {
			break
		}
		if len(keys) == limit {
			more = true
			break
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	n := 0
	for _, k := range keys {
		if err := byUntil.Delete(k); err != nil {
			return n, more, fmt.Errorf("index guard: %w", err)
		}
		id := k[8:]
		raw := guards.Get(id)
		if raw == nil {
			continue
		}
		g, err := decodeGuard(raw)
		if err != nil {
			s.log.Error("replay guard does not decode; kept, no longer pruned", "job", string(id), "err", err)
			continue
		}
		if g.Until.IsZero() || !g.Until.Before(now) {
			continue // a stale index entry; the guard is kept by its own
		}
		if err := guards.Delete(id); err != nil {
			return n, more, fmt.Errorf("delete guard: %w", err)
		}
		d.guards--
		n++
	}
	return n, more, nil
}
