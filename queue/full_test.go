package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFull fills a store to its size cap and shows that a full store
// refuses new jobs with ErrFull, loses nothing, still opens, verifies and
// serves reads, drains its outbox, and takes new jobs again after pruning.
func TestFull(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "q.db")
	opts := testOptions(c)
	opts.MaxSize = 1 << 20
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	envelope := make([]byte, 1024)
	var stored []string
	for i := 0; ; i++ {
		j := testJob(fmt.Sprintf("job-%05d", i), c)
		j.Envelope = envelope
		_, _, err := s.Insert(ctx, j)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		stored = append(stored, j.ID)
		if i > 10000 {
			t.Fatal("store never filled")
		}
	}
	if st, err := s.Stats(ctx); err != nil || !s.Full() || !st.Full || !strings.HasPrefix(st.FullCause, "size cap reached") {
		t.Fatalf("after ErrFull: Full %v, stats %v %q (%v), want full at the size cap", s.Full(), st.Full, st.FullCause, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("full after %d jobs, file %d bytes (cap %d)", len(stored), fi.Size(), opts.MaxSize)
	if fi.Size() > int64(opts.MaxSize) {
		t.Fatalf("file %d bytes exceeds cap %d", fi.Size(), opts.MaxSize)
	}
	// A duplicate of a stored job is still answered from the store.
	if _, created, err := s.Insert(ctx, testJob(stored[0], c)); err != nil || created {
		t.Fatalf("duplicate on a full store: created=%v %v", created, err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path, opts)
	if n, err := s.VerifyAudit(ctx); err != nil || n != uint64(len(stored)) {
		t.Fatalf("verify full store: n=%d %v", n, err)
	}
	got, err := s.ByState(ctx, Received, 0)
	if err != nil || len(got) != len(stored) {
		t.Fatalf("read full store: %d jobs, %v", len(got), err)
	}
	// The reserve lets the store finish and deliver what it holds.
	for _, id := range stored {
		if _, err := s.Transition(ctx, id, Change{To: Done, Outcome: Rejected, Reason: "test"}); err != nil {
			t.Fatalf("finish %s on a full store: %v", id, err)
		}
	}
	for after := uint64(0); ; {
		page, err := s.Undelivered(ctx, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			if err := s.MarkDelivered(ctx, r.Seq); err != nil {
				t.Fatal(err)
			}
			after = r.Seq
		}
	}
	c.Advance(48 * time.Hour)
	p, err := s.Prune(ctx)
	if err != nil || p.Jobs != len(stored) {
		t.Fatalf("prune %+v %v", p, err)
	}
	for i := range 50 {
		j := testJob(fmt.Sprintf("again-%02d", i), c)
		j.Envelope = envelope
		mustInsert(t, s, j)
	}
	if s.Full() {
		t.Fatal("still full after inserts went through")
	}
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}
