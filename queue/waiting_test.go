package queue

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
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
