package queue

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OldestWaiting returns how long the oldest job not yet done has waited
// since it was received, or 0 when none waits. Metrics ask for it on every
// scrape; reading every waiting record each time would keep the heads of
// all of them in the daemon's resident set. So the store keeps the oldest
// arrival from commit to commit and reads the records again only when the
// job it names stops waiting; that read's pages then leave the resident
// set (dropMapping).
func (s *Store) OldestWaiting(ctx context.Context) (time.Duration, error) {
	at, ok := s.oldest.get()
	if !ok {
		var err error
		if at, err = s.scanOldest(ctx); err != nil {
			return 0, err
		}
	}
	if at.IsZero() {
		return 0, nil
	}
	return s.opts.Now().Sub(at), nil
}

// scanOldest reads the arrival of every waiting job, tells s.oldest which
// job is the oldest, and returns its arrival (zero when none waits).
func (s *Store) scanOldest(ctx context.Context) (time.Time, error) {
	s.oldest.begin()
	var oldest arrival
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
				oldest.keepEarlier(arrival{at, string(k[1:])})
			}
		}
		return nil
	})
	if err != nil {
		s.oldest.abandon()
		return time.Time{}, err
	}
	dropMapping(s.db)
	return s.oldest.end(oldest), nil
}

// arrival is when job id was received; the zero value is none.
type arrival struct {
	at time.Time
	id string
}

// keepEarlier makes a the earlier of a and b, none counting as later than
// any.
func (a *arrival) keepEarlier(b arrival) {
	if !b.at.IsZero() && (a.at.IsZero() || b.at.Before(a.at)) {
		*a = b
	}
}

// oldestWaiting is the arrival of the oldest waiting job, kept current by
// each durable commit. It is unknown at first and again whenever the job
// it names stops waiting. While a scan reads the records (in a snapshot
// taken after begin), the commits that land meanwhile are noted, so what
// the scan found is brought up to date before it is kept.
type oldestWaiting struct {
	mu     sync.Mutex
	known  bool
	oldest arrival
	// During a scan: the earliest arrival committed meanwhile, and the
	// jobs that left meanwhile (the one the scan names may be among them).
	scanning    int
	seenArrived arrival
	seenLeft    map[string]bool
}

func (o *oldestWaiting) get() (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.oldest.at, o.known
}

// apply brings the figure up to date with a durable commit.
func (o *oldestWaiting) apply(d *delta) {
	if d.arrived.at.IsZero() && len(d.left) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.scanning > 0 {
		o.seenArrived.keepEarlier(d.arrived)
		for _, id := range d.left {
			o.seenLeft[id] = true
		}
	}
	if !o.known {
		return
	}
	if slices.Contains(d.left, o.oldest.id) {
		o.known, o.oldest = false, arrival{}
		return
	}
	o.oldest.keepEarlier(d.arrived)
}

func (o *oldestWaiting) begin() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.scanning == 0 {
		o.seenArrived, o.seenLeft = arrival{}, map[string]bool{}
	}
	o.scanning++
}

func (o *oldestWaiting) abandon() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.scanning--
}

// end takes the oldest arrival a scan found (zero: none waited) and
// returns the figure with the commits since its snapshot applied.
func (o *oldestWaiting) end(found arrival) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.scanning--
	found.keepEarlier(o.seenArrived)
	// When the job found left meanwhile the answer stands for this call
	// only, and the next one scans again.
	if !o.seenLeft[found.id] && o.scanning == 0 {
		o.known, o.oldest = true, found
	}
	return found.at
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

// WaitingIDs returns the ids of up to limit jobs not yet done — received,
// ready, then signing, each in id order — and whether more wait. It reads
// the state index only, never a record: a Sync lists ten thousand ids, and
// their records would stay in the resident set.
func (s *Store) WaitingIDs(ctx context.Context, limit int) ([]string, bool, error) {
	var ids []string
	more := false
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketByState).Cursor()
		for k, _ := c.Seek([]byte{byte(Received)}); k != nil && k[0] <= byte(Signing); k, _ = c.Next() {
			if limit > 0 && len(ids) == limit {
				more = true
				return nil
			}
			ids = append(ids, string(k[1:]))
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("waiting ids: %w", err)
	}
	return ids, more, nil
}
