package queue

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOldestWaiting(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	if d, err := s.OldestWaiting(ctx); err != nil || d != 0 {
		t.Fatalf("empty store: %v, %v", d, err)
	}
	mustInsert := func(id string) {
		t.Helper()
		if _, _, err := s.Insert(ctx, testJob(id, c)); err != nil {
			t.Fatal(err)
		}
	}
	mustInsert("job-a")
	c.Advance(10 * time.Minute)
	mustInsert("job-b")
	c.Advance(5 * time.Minute)
	if d, err := s.OldestWaiting(ctx); err != nil || d != 15*time.Minute {
		t.Fatalf("OldestWaiting = %v, %v; want 15m", d, err)
	}
	// Once the oldest is done, the next one counts.
	if _, err := s.Transition(ctx, "job-a", Change{To: Ready}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, "job-a", Change{To: Done, Outcome: Rejected}); err != nil {
		t.Fatal(err)
	}
	if d, err := s.OldestWaiting(ctx); err != nil || d != 5*time.Minute {
		t.Fatalf("OldestWaiting = %v, %v; want 5m", d, err)
	}
}

func TestReceivedAtRefusesTruncated(t *testing.T) {
	c := newClock()
	j := testJob("job-x", c)
	raw := encodeJob(&j)
	if at, err := receivedAt(raw); err != nil || !at.Equal(j.ReceivedAt) {
		t.Fatalf("receivedAt = %v, %v; want %v", at, err, j.ReceivedAt)
	}
	for n := range len(raw) - 1 {
		if _, err := receivedAt(raw[:n]); err == nil && n < len(raw)-40 {
			t.Fatalf("truncated record of %d bytes accepted", n)
		}
	}
}

func TestHeadsLeaveOutTheEnvelope(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	j := testJob("job-h", c)
	j.Signer = "ab" + strings.Repeat("cd", 31)
	if _, _, err := s.Insert(ctx, j); err != nil {
		t.Fatal(err)
	}
	full, err := s.BySigner(ctx, j.Signer, 0)
	if err != nil || len(full) != 1 || len(full[0].Envelope) == 0 {
		t.Fatalf("BySigner: %v %+v", err, full)
	}
	heads, err := s.BySignerHeads(ctx, j.Signer, 0)
	if err != nil || len(heads) != 1 || heads[0].Envelope != nil {
		t.Fatalf("BySignerHeads: %v %+v", err, heads)
	}
	want := full[0]
	want.Envelope = nil
	if !reflect.DeepEqual(heads[0], want) {
		t.Fatalf("heads differ beyond the envelope:\n%+v\n%+v", heads[0], want)
	}
	byState, err := s.ByStateHeads(ctx, Received, 0)
	if err != nil || len(byState) != 1 || byState[0].Envelope != nil || byState[0].ID != "job-h" {
		t.Fatalf("ByStateHeads: %v %+v", err, byState)
	}
}

// TestOldestWaitingKeptByCommits checks the figure kept from commit to
// commit against a scan of the records after every step of random work:
// arrivals (some received before the oldest), moves to ready, to signing
// and to done, from several goroutines at once, across a reopen.
func TestOldestWaitingKeptByCommits(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "q.db")
	s := openTest(t, path, testOptions(c))
	ctx := context.Background()
	scanned := func() time.Duration {
		t.Helper()
		var oldest time.Time
		for _, st := range []State{Received, Ready, Signing} {
			heads, err := s.ByStateHeads(ctx, st, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range heads {
				if oldest.IsZero() || h.ReceivedAt.Before(oldest) {
					oldest = h.ReceivedAt
				}
			}
		}
		if oldest.IsZero() {
			return 0
		}
		return c.Now().Sub(oldest)
	}
	rng := rand.New(rand.NewPCG(7, 21))
	var waiting []string
	next := 0
	for step := range 400 {
		if step == 200 {
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, path, testOptions(c))
		}
		var wg sync.WaitGroup
		var arrived []string // moved only from the next step on
		for range 1 + rng.IntN(4) {
			switch op := rng.IntN(3); {
			case op == 0 || len(waiting) == 0:
				next++
				j := testJob(fmt.Sprintf("job-%04d", next), c)
				if rng.IntN(4) == 0 { // sent on by another path, received earlier
					j.ReceivedAt = c.Now().Add(-time.Duration(rng.IntN(120)) * time.Minute)
				}
				arrived = append(arrived, j.ID)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, _, err := s.Insert(ctx, j); err != nil {
						t.Error(err)
					}
				}()
			default:
				i := rng.IntN(len(waiting))
				id := waiting[i]
				waiting = slices.Delete(waiting, i, i+1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := s.Transition(ctx, id, Change{To: Ready}); err != nil {
						t.Error(err)
						return
					}
					if _, err := s.Transition(ctx, id, Change{To: Done, Outcome: Rejected}); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		// A scrape may run beside the commits; its answer is checked
		// once they are done.
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.OldestWaiting(ctx); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		waiting = append(waiting, arrived...)
		c.Advance(time.Duration(rng.IntN(90)) * time.Second)
		want := scanned()
		if got, err := s.OldestWaiting(ctx); err != nil || got != want {
			t.Fatalf("step %d: OldestWaiting = %v, %v; the records say %v", step, got, err, want)
		}
	}
	// Arrivals keep the figure known: a scrape reads no record.
	if _, known := s.oldest.get(); !known {
		t.Fatal("after a scrape the figure is not kept")
	}
	next++
	if _, _, err := s.Insert(ctx, testJob(fmt.Sprintf("job-%04d", next), c)); err != nil {
		t.Fatal(err)
	}
	if _, known := s.oldest.get(); !known {
		t.Fatal("an arrival made the figure unknown")
	}
}
