// Package boltstore is the gateway's store in one bbolt file, for a
// gateway that runs alone: the default, as make demo runs it.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tekenid/teken/gateway/store"
)

// The file's buckets. Letters are kept without their envelope and
// result, which have buckets of their own, so that lists and state
// changes do not copy documents.
var (
	bucketLetters    = []byte("letters")    // id → letter JSON
	bucketEnvelopes  = []byte("envelopes")  // id → the signed job
	bucketResults    = []byte("results")    // id → the terminal's result
	bucketIdem       = []byte("idem")       // client ‖ 0 ‖ idempotency key → id
	bucketByState    = []byte("by_state")   // state ‖ 0 ‖ id → ∅
	bucketUnfinished = []byte("unfinished") // terminal ‖ 0 ‖ id → ∅ (sent or stored)
	bucketCounts     = []byte("counts")     // state → count, uint64
	bucketEvents     = []byte("events")     // seq → event JSON
	bucketClientEvts = []byte("client_evt") // client ‖ 0 ‖ seq → ∅
	bucketDeliveries = []byte("deliveries") // id → delivery JSON
	bucketDue        = []byte("due")        // id → ∅ (deliveries not done)
	bucketLetterDlv  = []byte("letter_dlv") // letter id ‖ 0 ‖ delivery id → ∅
	bucketAudit      = []byte("audit")      // seq → entry JSON
	allBuckets       = [][]byte{bucketLetters, bucketEnvelopes, bucketResults, bucketIdem, bucketByState,
		bucketUnfinished, bucketCounts, bucketEvents, bucketClientEvts, bucketDeliveries, bucketDue,
		bucketLetterDlv, bucketAudit}
)

// Options configures Open.
type Options struct {
	Hooks store.Hooks      // nil: no webhooks
	Now   func() time.Time // time.Now when nil
}

// Store is a store.Store in one bbolt file.
type Store struct {
	db    *bolt.DB
	hooks store.Hooks
	now   func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the store at path; its directory must exist.
func Open(path string, o Options) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("prepare %s: %w", filepath.Base(path), err)
	}
	// A lone write waits this long for others to share its commit.
	db.MaxBatchDelay = 2 * time.Millisecond
	s := &Store{db: db, hooks: o.Hooks, now: o.Now}
	if s.hooks == nil {
		s.hooks = func(string) []string { return nil }
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func key(parts ...string) []byte {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(p)
	}
	return b.Bytes()
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func (s *Store) Create(ctx context.Context, l *store.Letter) (*store.Letter, bool, error) {
	var out *store.Letter
	created := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		out, created = nil, false
		if l.IdempotencyKey != "" {
			if id := tx.Bucket(bucketIdem).Get(key(l.Client, l.IdempotencyKey)); id != nil {
				prev, err := getLetter(tx, string(id), true)
				if err != nil {
					return err
				}
				out = prev
				if prev.RequestSHA256 != l.RequestSHA256 {
					return store.ErrIdempotencyMismatch
				}
				return nil
			}
		}
		if tx.Bucket(bucketLetters).Get([]byte(l.ID)) != nil {
			return fmt.Errorf("letter %s exists already", l.ID)
		}
		n := *l
		now := s.now().UTC()
		n.State, n.CreatedAt, n.UpdatedAt = store.Queued, now, now
		if n.IdempotencyKey != "" {
			if err := tx.Bucket(bucketIdem).Put(key(n.Client, n.IdempotencyKey), []byte(n.ID)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketEnvelopes).Put([]byte(n.ID), n.Envelope); err != nil {
			return err
		}
		if err := s.appendEvent(tx, &n); err != nil {
			return err
		}
		if err := putLetter(tx, nil, &n); err != nil {
			return err
		}
		out, created = &n, true
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrIdempotencyMismatch) {
		return nil, false, err
	}
	return out, created, err
}

func (s *Store) Get(ctx context.Context, id string) (*store.Letter, error) {
	var out *store.Letter
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = getLetter(tx, id, true)
		return err
	})
	return out, err
}

func getLetter(tx *bolt.Tx, id string, blobs bool) (*store.Letter, error) {
	raw := tx.Bucket(bucketLetters).Get([]byte(id))
	if raw == nil {
		return nil, store.ErrNotFound
	}
	var l store.Letter
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("letter %s: %w", id, err)
	}
	if blobs {
		l.Envelope = bytes.Clone(tx.Bucket(bucketEnvelopes).Get([]byte(id)))
		l.Result = bytes.Clone(tx.Bucket(bucketResults).Get([]byte(id)))
	}
	return &l, nil
}

// putLetter writes l and keeps the indexes and counts; old is the letter
// as it was, nil when new. The envelope and result are written apart.
func putLetter(tx *bolt.Tx, old, l *store.Letter) error {
	raw, err := json.Marshal(letterRecord(l))
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketLetters).Put([]byte(l.ID), raw); err != nil {
		return err
	}
	if old != nil && old.State == l.State {
		return nil
	}
	byState, unfinished := tx.Bucket(bucketByState), tx.Bucket(bucketUnfinished)
	if old != nil {
		if err := byState.Delete(key(string(old.State), old.ID)); err != nil {
			return err
		}
		if err := unfinished.Delete(key(old.Terminal, old.ID)); err != nil {
			return err
		}
		if err := addCount(tx, old.State, -1); err != nil {
			return err
		}
	}
	if err := byState.Put(key(string(l.State), l.ID), nil); err != nil {
		return err
	}
	if l.State == store.Sent || l.State == store.Stored {
		if err := unfinished.Put(key(l.Terminal, l.ID), nil); err != nil {
			return err
		}
	}
	return addCount(tx, l.State, 1)
}

// letterRecord is l without its blobs.
func letterRecord(l *store.Letter) *store.Letter {
	r := *l
	r.Envelope, r.Result = nil, nil
	return &r
}

func addCount(tx *bolt.Tx, st store.State, d int) error {
	b := tx.Bucket(bucketCounts)
	var n uint64
	if v := b.Get([]byte(st)); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n = uint64(int64(n) + int64(d))
	return b.Put([]byte(st), u64(n))
}

// appendEvent gives l the next Seq and appends its event, with a
// delivery to each of its client's hooks.
func (s *Store) appendEvent(tx *bolt.Tx, l *store.Letter) error {
	events := tx.Bucket(bucketEvents)
	seq, err := events.NextSequence()
	if err != nil {
		return err
	}
	l.Seq = seq
	ev := store.Event{Seq: seq, Client: l.Client, LetterID: l.ID, State: l.State, Reason: l.Reason, Detail: l.Detail, At: l.UpdatedAt}
	raw, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := events.Put(u64(seq), raw); err != nil {
		return err
	}
	if err := tx.Bucket(bucketClientEvts).Put(append(key(l.Client, ""), u64(seq)...), nil); err != nil {
		return err
	}
	dlv := tx.Bucket(bucketDeliveries)
	for _, ep := range s.hooks(l.Client) {
		id, err := dlv.NextSequence()
		if err != nil {
			return err
		}
		d := store.Delivery{ID: id, Client: l.Client, Endpoint: ep, Event: ev, NextAt: ev.At}
		if err := putDelivery(tx, &d); err != nil {
			return err
		}
		if err := tx.Bucket(bucketDue).Put(u64(id), nil); err != nil {
			return err
		}
		if err := tx.Bucket(bucketLetterDlv).Put(append(key(l.ID, ""), u64(id)...), nil); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) List(ctx context.Context, q store.Query) (store.Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultPage
	}
	limit = min(limit, store.MaxPage)
	var page store.Page
	err := s.view(ctx, func(tx *bolt.Tx) error {
		page = store.Page{}
		match := func(l *store.Letter) bool {
			return (q.Client == "" || l.Client == q.Client) && (q.State == "" || l.State == q.State) &&
				(q.Terminal == "" || l.Terminal == q.Terminal) &&
				(q.Signer == "" || l.SignerCert == q.Signer || l.SignerNIP == q.Signer)
		}
		// By state, the index holds the ids in order; otherwise every
		// letter in id order, which is the order of creation (ULIDs).
		var c *bolt.Cursor
		prefix := []byte(nil)
		if q.State != "" {
			c, prefix = tx.Bucket(bucketByState).Cursor(), key(string(q.State), "")
		} else {
			c = tx.Bucket(bucketLetters).Cursor()
		}
		var k []byte
		if q.After != "" {
			seek := append(bytes.Clone(prefix), q.After...)
			k, _ = c.Seek(seek)
			if bytes.Equal(k, seek) {
				k, _ = c.Next()
			}
		} else {
			k, _ = c.Seek(prefix)
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			l, err := getLetter(tx, string(k[len(prefix):]), false)
			if err != nil {
				return err
			}
			if !match(l) {
				continue
			}
			if len(page.Letters) == limit {
				page.Next = page.Letters[limit-1].ID
				return nil
			}
			page.Letters = append(page.Letters, l)
		}
		return nil
	})
	return page, err
}

func (s *Store) Change(ctx context.Context, id string, fn func(*store.Letter) (bool, error)) (*store.Letter, error) {
	var out *store.Letter
	err := s.update(ctx, func(tx *bolt.Tx) error {
		out = nil
		old, err := getLetter(tx, id, true)
		if err != nil {
			return err
		}
		n := *old
		changed, err := fn(&n)
		if err != nil || !changed {
			out = old
			return err
		}
		if old.State.Final() && n.State != old.State {
			return fmt.Errorf("letter %s is %s: %w", id, old.State, store.ErrFinal)
		}
		n.ID, n.Client = old.ID, old.Client
		n.UpdatedAt = s.now().UTC()
		if n.State != old.State || n.Reason != old.Reason || n.Detail != old.Detail {
			if err := s.appendEvent(tx, &n); err != nil {
				return err
			}
		}
		if !bytes.Equal(n.Result, old.Result) {
			if err := tx.Bucket(bucketResults).Put([]byte(id), n.Result); err != nil {
				return err
			}
		}
		if err := putLetter(tx, old, &n); err != nil {
			return err
		}
		out = &n
		return nil
	})
	return out, err
}

func (s *Store) ClaimQueued(ctx context.Context, now, until time.Time, limit int) ([]*store.Letter, error) {
	var out []*store.Letter
	err := s.update(ctx, func(tx *bolt.Tx) error {
		out = nil
		prefix := key(string(store.Queued), "")
		c := tx.Bucket(bucketByState).Cursor()
		var claimed []*store.Letter
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(claimed) < limit; k, _ = c.Next() {
			l, err := getLetter(tx, string(k[len(prefix):]), true)
			if err != nil {
				return err
			}
			if l.LeaseUntil.After(now) {
				continue
			}
			claimed = append(claimed, l)
		}
		for _, l := range claimed {
			old := *l
			l.LeaseUntil = until.UTC()
			if err := putLetter(tx, &old, l); err != nil {
				return err
			}
		}
		out = claimed
		return nil
	})
	return out, err
}

func (s *Store) Unfinished(ctx context.Context, terminal string, now time.Time) ([]*store.Letter, error) {
	var out []*store.Letter
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		prefix := key(terminal, "")
		c := tx.Bucket(bucketUnfinished).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			l, err := getLetter(tx, string(k[len(prefix):]), true)
			if err != nil {
				return err
			}
			if !l.ExpiresAt.IsZero() && !l.ExpiresAt.After(now) {
				continue
			}
			out = append(out, l)
		}
		return nil
	})
	return out, err
}

func (s *Store) Events(ctx context.Context, client string, after uint64, limit int) ([]store.Event, error) {
	var out []store.Event
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		prefix := key(client, "")
		c := tx.Bucket(bucketClientEvts).Cursor()
		events := tx.Bucket(bucketEvents)
		for k, _ := c.Seek(append(bytes.Clone(prefix), u64(after+1)...)); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Next() {
			raw := events.Get(k[len(prefix):])
			var ev store.Event
			if err := json.Unmarshal(raw, &ev); err != nil {
				return fmt.Errorf("event %x: %w", k[len(prefix):], err)
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

func (s *Store) Counts(ctx context.Context) (map[store.State]int, error) {
	out := map[store.State]int{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCounts).ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				out[store.State(k)] = int(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	return out, err
}

// update runs fn in a read-write transaction, unless ctx ended. Calls
// from many goroutines at once (API requests, results, webhook
// attempts) share one transaction and one fsync (bbolt's Batch): fn may
// run more than once, so each sets its results afresh.
func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Batch(fn)
}

func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}
