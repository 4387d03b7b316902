package queue

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// expiries collects what Options.OnExpired is called with.
type expiries chan []Job

func (e expiries) hook(jobs []Job) { e <- jobs }

// await returns the next call's jobs, or fails the test after timeout.
func (e expiries) await(t *testing.T, timeout time.Duration) []Job {
	t.Helper()
	select {
	case jobs := <-e:
		return jobs
	case <-time.After(timeout):
		t.Fatalf("no expiry within %s", timeout)
		return nil
	}
}

// A store opened after a job's expiry passed expires it at once, not at
// the end of the first SweepInterval (an hour here).
func TestSweepAtOpen(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "q.db")
	s, err := Open(path, testOptions(c))
	if err != nil {
		t.Fatal(err)
	}
	mustInsert(t, s, testJob("a", c))
	mustInsert(t, s, testJob("b", c))
	mustMove(t, s, "b", Change{To: Ready})
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Advance(2 * time.Hour)
	got := make(expiries, 4)
	opts := testOptions(c)
	opts.OnExpired = got.hook
	s = openTest(t, path, opts)
	jobs := got.await(t, 20*time.Second)
	if ids(jobs) != "a,b," {
		t.Fatalf("expired at open: %q, want a,b", ids(jobs))
	}
	for _, id := range []string{"a", "b"} {
		if j, err := s.Get(context.Background(), id); err != nil || j.State != Done || j.Outcome != Expired {
			t.Fatalf("job %s after open: %+v %v", id, j, err)
		}
	}
}

// A job is expired when its expiry passes, whatever the period: the
// sweeper's timer is set to the soonest expiry and set again by an insert
// that expires sooner, and by a job back from signing whose expiry passed
// meanwhile.
func TestSweepTimer(t *testing.T) {
	got := make(expiries, 4)
	opts := Options{TerminalID: "kendari-setda-01", Logger: quiet, SweepInterval: time.Hour, OnExpired: got.hook}
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), opts)
	ctx := context.Background()
	job := func(id string, in time.Duration) Job {
		return Job{ID: id, Signer: signerA, Envelope: []byte("e." + id), ExpiresAt: time.Now().Add(in)}
	}
	mustInsert(t, s, job("later", time.Hour)) // the timer waits for this one
	soon := mustInsert(t, s, job("soon", 200*time.Millisecond))
	start := time.Now()
	jobs := got.await(t, 30*time.Second)
	if ids(jobs) != "soon," {
		t.Fatalf("expired %q, want soon", ids(jobs))
	}
	j, err := s.Get(ctx, "soon")
	if err != nil || j.State != Done || j.Outcome != Expired || j.UpdatedAt.Before(soon.ExpiresAt) {
		t.Fatalf("soon: %+v %v, want expired, not before %s", j, err, soon.ExpiresAt)
	}
	t.Logf("expired %s after its expiry, %s after the insert", j.UpdatedAt.Sub(soon.ExpiresAt), time.Since(start))
	if j, _ := s.Get(ctx, "later"); j.State != Received {
		t.Fatalf("later: %s, want received", j.State)
	}

	// In signing when its expiry passes: left alone, then expired as soon
	// as it is put back.
	late := mustInsert(t, s, job("late", 200*time.Millisecond))
	mustMove(t, s, "late", Change{To: Ready})
	mustMove(t, s, "late", Change{To: Signing})
	waitFor(t, 30*time.Second, func() bool { return time.Now().After(late.ExpiresAt) })
	if j, _ := s.Get(ctx, "late"); j.State != Signing {
		t.Fatalf("late while signing: %s", j.State)
	}
	mustMove(t, s, "late", Change{To: Ready, Reason: "abandoned"})
	if jobs := got.await(t, 30*time.Second); ids(jobs) != "late," {
		t.Fatalf("expired %q, want late", ids(jobs))
	}
}

// OnExpired is called after the sweep's transaction committed: a reader in
// the hook finds the jobs done and their Results in the outbox. It gets the
// jobs as stored, without their envelopes.
func TestOnExpiredAfterCommit(t *testing.T) {
	c := newClock()
	var store atomic.Pointer[Store]
	type seen struct {
		jobs []Job
		err  error
	}
	calls := make(chan seen, 4)
	opts := testOptions(c)
	opts.ExpiryPayload = func(j Job) []byte { return []byte("expired:" + j.ID) }
	opts.OnExpired = func(jobs []Job) {
		s := store.Load()
		var err error
		for _, j := range jobs {
			got, gerr := s.Get(context.Background(), j.ID)
			if gerr != nil || got.State != Done || got.Outcome != Expired {
				err = errors.Join(err, gerr, errors.New("job "+j.ID+" not done in the hook"))
			}
			if r, rerr := s.Result(context.Background(), j.ResultSeq); rerr != nil || string(r.Payload) != "expired:"+j.ID {
				err = errors.Join(err, rerr, errors.New("no result for "+j.ID+" in the hook"))
			}
		}
		calls <- seen{jobs, err}
	}
	s, err := Open(filepath.Join(t.TempDir(), "q.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	store.Store(s)
	t.Cleanup(func() { s.Close(context.Background()) })
	mustInsert(t, s, testJob("a", c))
	mustInsert(t, s, testJob("b", c))
	if n, err := s.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("early sweep: %d %v", n, err)
	}
	c.Advance(2 * time.Hour)
	if n, err := s.Sweep(context.Background()); err != nil || n != 2 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	call := <-calls // Sweep returned after its hook
	if call.err != nil {
		t.Fatal(call.err)
	}
	if ids(call.jobs) != "a,b," {
		t.Fatalf("hook got %q", ids(call.jobs))
	}
	for _, j := range call.jobs {
		if j.Signer != signerA || j.Envelope != nil || j.State != Done || j.Outcome != Expired || j.ResultSeq == 0 {
			t.Fatalf("hook got %+v", j)
		}
	}
	select {
	case extra := <-calls:
		t.Fatalf("hook called again with %q", ids(extra.jobs))
	default:
	}
}
