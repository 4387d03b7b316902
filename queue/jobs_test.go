package queue

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestCanTransition(t *testing.T) {
	tests := []struct {
		from, to State
		out      Outcome
		want     bool
	}{
		{Received, Ready, NoOutcome, true},
		{Ready, Signing, NoOutcome, true},
		{Signing, Done, Signed, true},
		{Signing, Done, Failed, true},
		{Signing, Ready, NoOutcome, true},
		{Ready, Done, Rejected, true},
		{Ready, Done, Expired, true},
		{Ready, Done, Cancelled, true},
		{Received, Done, Failed, true},
		{Received, Done, Rejected, true},
		{Received, Done, Expired, true},
		{Received, Signing, NoOutcome, false},
		{Received, Done, Signed, false},
		{Ready, Done, Signed, false},
		{Ready, Done, Failed, false},
		{Signing, Done, Rejected, false},
		{Signing, Done, Expired, false},
		{Ready, Ready, NoOutcome, false},
		{Done, Ready, NoOutcome, false},
		{Done, Done, Signed, false},
		{Ready, Signing, Signed, false},
		{Signing, Done, NoOutcome, false},
		{Received, Received, NoOutcome, false},
	}
	for _, tt := range tests {
		t.Run(tt.from.String()+"→"+tt.to.String()+"("+tt.out.String()+")", func(t *testing.T) {
			if got := CanTransition(tt.from, tt.to, tt.out); got != tt.want {
				t.Fatalf("CanTransition = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInsertIdempotent(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	j := testJob("01HZX", c)
	first := mustInsert(t, s, j)
	if first.State != Received || !first.ReceivedAt.Equal(c.Now()) {
		t.Fatalf("inserted %+v", first)
	}
	mustMove(t, s, j.ID, Change{To: Ready})
	dup := j
	dup.Envelope = []byte("a different envelope")
	got, created, err := s.Insert(ctx, dup)
	if err != nil || created {
		t.Fatalf("duplicate insert: created=%v err=%v", created, err)
	}
	if got.State != Ready || !bytes.Equal(got.Envelope, j.Envelope) {
		t.Fatalf("duplicate returned %+v, want the stored ready job", got)
	}
	all, _ := s.ByState(ctx, Received, 0)
	ready, _ := s.ByState(ctx, Ready, 0)
	if len(all) != 0 || len(ready) != 1 {
		t.Fatalf("received=%d ready=%d, want 0 and 1", len(all), len(ready))
	}
	if st, _ := s.Stats(ctx); st.Jobs[Ready] != 1 || st.Jobs[Received] != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestInsertInvalid(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	for name, j := range map[string]Job{
		"empty id":       {},
		"long id":        {ID: string(make([]byte, maxIDLen+1))},
		"upper signer":   {ID: "a", Signer: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		"short signer":   {ID: "a", Signer: "abcd"},
		"expiry in 1960": {ID: "a", ExpiresAt: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := s.Insert(context.Background(), j); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	j := mustInsert(t, s, testJob("01J1", c))
	mustMove(t, s, j.ID, Change{To: Ready})
	mustMove(t, s, j.ID, Change{To: Signing})
	mustMove(t, s, j.ID, Change{To: Ready, Reason: "token removed"})
	mustMove(t, s, j.ID, Change{To: Signing})
	done := mustMove(t, s, j.ID, Change{To: Done, Outcome: Signed, Payload: []byte("cms")})
	if done.ResultSeq != 1 || done.Outcome != Signed {
		t.Fatalf("done job %+v", done)
	}
	_, err := s.Transition(ctx, j.ID, Change{To: Ready})
	var te *TransitionError
	if !errors.As(err, &te) || te.From != Done || te.To != Ready {
		t.Fatalf("transition from done: got %v, want *TransitionError", err)
	}
	if _, err := s.Transition(ctx, "nope", Change{To: Ready}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
	res, err := s.Undelivered(ctx, 0, 10)
	if err != nil || len(res) != 1 || res[0].JobID != j.ID || string(res[0].Payload) != "cms" {
		t.Fatalf("outbox %+v %v", res, err)
	}
	if got, _ := s.BySigner(ctx, signerA, 0); len(got) != 0 {
		t.Fatalf("done job still indexed by signer: %s", ids(got))
	}
	if n, err := s.VerifyAudit(ctx); err != nil || n != 6 {
		t.Fatalf("audit: n=%d err=%v, want 6 entries", n, err)
	}
	var events []Event
	var buf bytes.Buffer
	if _, err := s.ExportAudit(ctx, &buf, 0); err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		e := decodeJSONEntry(t, line)
		events = append(events, e.Event)
	}
	want := []Event{EventReceived, EventReady, EventSigning, EventAbandoned, EventSigning, EventDone}
	for i, e := range want {
		if events[i] != e {
			t.Fatalf("events %v, want prefix %v", events, want)
		}
	}
}

func TestIndexes(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	for i, id := range []string{"j1", "j2", "j3", "j4"} {
		j := testJob(id, c)
		j.ExpiresAt = c.Now().Add(time.Duration(4-i) * time.Minute)
		if i%2 == 1 {
			j.Signer = signerB
		}
		mustInsert(t, s, j)
	}
	mustMove(t, s, "j3", Change{To: Ready})
	mustMove(t, s, "j4", Change{To: Done, Outcome: Rejected, Reason: "bad envelope"})
	tests := []struct {
		name string
		get  func() ([]Job, error)
		want string
	}{
		{"received", func() ([]Job, error) { return s.ByState(ctx, Received, 0) }, "j1,j2,"},
		{"ready", func() ([]Job, error) { return s.ByState(ctx, Ready, 0) }, "j3,"},
		{"done", func() ([]Job, error) { return s.ByState(ctx, Done, 0) }, "j4,"},
		{"limit", func() ([]Job, error) { return s.ByState(ctx, Received, 1) }, "j1,"},
		{"signer A", func() ([]Job, error) { return s.BySigner(ctx, signerA, 0) }, "j1,j3,"},
		{"signer B", func() ([]Job, error) { return s.BySigner(ctx, signerB, 0) }, "j2,"},
		{"expiring", func() ([]Job, error) { return s.ExpiringBefore(ctx, c.Now().Add(3*time.Minute+time.Second), 0) }, "j3,j2,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.get()
			if err != nil || ids(got) != tt.want {
				t.Fatalf("got %q (%v), want %q", ids(got), err, tt.want)
			}
		})
	}
}

func TestSweep(t *testing.T) {
	c := newClock()
	opts := testOptions(c)
	opts.ExpiryPayload = func(j Job) []byte { return []byte("expired:" + j.ID) }
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), opts)
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c", "d"} {
		mustInsert(t, s, testJob(id, c))
	}
	mustMove(t, s, "b", Change{To: Ready})
	mustMove(t, s, "c", Change{To: Ready})
	mustMove(t, s, "c", Change{To: Signing})
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("early sweep: n=%d err=%v", n, err)
	}
	c.Advance(time.Hour)
	if n, err := s.Sweep(ctx); err != nil || n != 3 {
		t.Fatalf("sweep: n=%d err=%v, want 3 (signing job left alone)", n, err)
	}
	for id, want := range map[string]State{"a": Done, "b": Done, "c": Signing, "d": Done} {
		j, err := s.Get(ctx, id)
		if err != nil || j.State != want || (want == Done && j.Outcome != Expired) {
			t.Fatalf("job %s: %+v %v", id, j, err)
		}
	}
	res, _ := s.Undelivered(ctx, 0, 0)
	if len(res) != 3 || string(res[0].Payload) != "expired:a" || res[0].Outcome != Expired {
		t.Fatalf("outbox %+v", res)
	}
}

func TestSweeperGoroutine(t *testing.T) {
	c := newClock()
	opts := testOptions(c)
	opts.SweepInterval = 5 * time.Millisecond
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), opts)
	mustInsert(t, s, testJob("a", c))
	c.Advance(2 * time.Hour)
	waitFor(t, 10*time.Second, func() bool {
		j, err := s.Get(context.Background(), "a")
		return err == nil && j.State == Done
	})
}

func TestRecoverSigning(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "q.db")
	s, err := Open(path, testOptions(c))
	if err != nil {
		t.Fatal(err)
	}
	mustInsert(t, s, testJob("a", c))
	mustMove(t, s, "a", Change{To: Ready})
	mustMove(t, s, "a", Change{To: Signing})
	ctx := context.Background()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, testOptions(c))
	j, err := s.Get(ctx, "a")
	if err != nil || j.State != Ready {
		t.Fatalf("after reopen: %+v %v", j, err)
	}
	var buf bytes.Buffer
	last, err := s.ExportAudit(ctx, &buf, 3)
	if err != nil || last != 4 || !bytes.Contains(buf.Bytes(), []byte(EventRecovered)) {
		t.Fatalf("audit after recovery: last=%d %v %s", last, err, buf.String())
	}
	if st, _ := s.Stats(ctx); st.Jobs[Signing] != 0 || st.Jobs[Ready] != 1 {
		t.Fatalf("stats %+v", st)
	}
}
