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

// InsertReady stores and readies a job in one transaction, and the audit
// log has both moves, as Insert and a Transition write them.
func TestInsertReady(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{TerminalID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	before, _ := s.Stats(ctx)
	j, created, err := s.InsertReady(ctx, Job{ID: "j1", Envelope: []byte("e"), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil || !created || j.State != Ready {
		t.Fatalf("InsertReady: %+v %v %v", j, created, err)
	}
	after, _ := s.Stats(ctx)
	if after.Commits-before.Commits != 1 || after.Jobs[Ready] != 1 || after.Jobs[Received] != 0 {
		t.Errorf("%d commits, jobs %v; want 1 commit and one ready job", after.Commits-before.Commits, after.Jobs)
	}
	if again, created, err := s.InsertReady(ctx, Job{ID: "j1", Envelope: []byte("e")}); err != nil || created || again.State != Ready {
		t.Errorf("again: %+v %v %v", again, created, err)
	}
	var events []Event
	if _, err := s.ExportAudit(ctx, writerFunc(func(p []byte) (int, error) {
		for _, e := range []Event{EventReceived, EventReady} {
			if bytes.Contains(p, []byte(e)) {
				events = append(events, e)
			}
		}
		return len(p), nil
	}), 0); err != nil {
		t.Fatal(err)
	}
	if len(events) < 2 {
		t.Errorf("audit events %v, want job.received and job.ready", events)
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
