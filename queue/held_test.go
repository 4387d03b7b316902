package queue

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// A held result is stored with its job done, sent by nobody (it is not
// undelivered), survives a reopen, and goes to the outbox with its new
// payload when released; an acknowledgement before that changes nothing.
func TestHeldResults(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "q.db")
	s, err := Open(path, Options{TerminalID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, id := range []string{"held", "plain"} {
		if _, _, err := s.Insert(ctx, Job{ID: id, Envelope: []byte("e-" + id), ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		for _, st := range []State{Ready, Signing} {
			if _, err := s.Transition(ctx, id, Change{To: st}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Transition(ctx, id, Change{To: Done, Outcome: Signed, Payload: []byte("B-T " + id), Hold: id == "held"}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := s.Stats(ctx)
	if st.Held != 1 || st.Undelivered != 1 {
		t.Fatalf("stats: held %d, undelivered %d; want 1 and 1", st.Held, st.Undelivered)
	}
	pending, err := s.Undelivered(ctx, 0, 10)
	if err != nil || len(pending) != 1 || pending[0].JobID != "plain" {
		t.Fatalf("undelivered: %+v %v", pending, err)
	}
	if first, err := s.AckResult(ctx, "held"); err != nil || first {
		t.Fatalf("ack of a held result: %v %v", first, err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, Options{TerminalID: "t1"}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	held, err := s.HeldResults(ctx, 10)
	if err != nil || len(held) != 1 || held[0].JobID != "held" || string(held[0].Payload) != "B-T held" {
		t.Fatalf("held after reopen: %+v %v", held, err)
	}
	if st, _ := s.Stats(ctx); st.Held != 1 || st.Undelivered != 1 {
		t.Fatalf("stats after reopen: held %d, undelivered %d", st.Held, st.Undelivered)
	}
	big := bytes.Repeat([]byte("B-LTA "), 40000) // several blob chunks
	if err := s.ReleaseResult(ctx, held[0].Seq, big); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseResult(ctx, held[0].Seq, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("second release: %v, want ErrNotFound", err)
	}
	pending, err = s.Undelivered(ctx, 0, 10)
	// Released as a result stored now: after the one already pending.
	if err != nil || len(pending) != 2 || pending[1].JobID != "held" || !bytes.Equal(pending[1].Payload, big) || pending[1].Seq <= held[0].Seq {
		t.Fatalf("undelivered after release: %d %v", len(pending), err)
	}
	if st, _ := s.Stats(ctx); st.Held != 0 || st.Undelivered != 2 {
		t.Fatalf("stats after release: held %d, undelivered %d", st.Held, st.Undelivered)
	}
	if first, err := s.AckResult(ctx, "held"); err != nil || !first {
		t.Fatalf("ack after release: %v %v", first, err)
	}
}
