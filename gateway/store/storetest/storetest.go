// Package storetest is the contract every gateway store keeps, as tests
// one implementation's test file runs against a fresh store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/gateway/store"
)

// Open returns an empty store whose clients "pemda" and "dinkes" have
// the webhook endpoints Hooks names; the test closes it.
type Open func(t *testing.T, hooks store.Hooks) store.Store

// Hooks gives client "pemda" two endpoints and every other client none.
func Hooks(client string) []string {
	if client == "pemda" {
		return []string{"primary", "archive"}
	}
	return nil
}

// Run runs every contract test against stores made by open.
func Run(t *testing.T, open Open) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateGet", testCreateGet},
		{"Idempotency", testIdempotency},
		{"ChangeEventsDeliveries", testChangeEventsDeliveries},
		{"FinalStaysFinal", testFinalStaysFinal},
		{"ListPages", testListPages},
		{"ClaimQueued", testClaimQueued},
		{"Unfinished", testUnfinished},
		{"ClaimDeliveries", testClaimDeliveries},
		{"ConcurrentChanges", testConcurrentChanges},
		{"CountsAndAudit", testCountsAndAudit},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := open(t, Hooks)
			c.fn(t, s)
		})
	}
}

var ctx = context.Background()

// NewLetter is a letter of client for terminal, not yet stored.
func NewLetter(client, terminal string) *store.Letter {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return &store.Letter{
		ID: store.NewLetterID(), Client: client, Terminal: terminal,
		SignerCert: "1265630241a3c8df5a89baad68678cf60b2f6fefd0ef30960426900dbc8e8563", SignerNIP: "198703152010012003",
		Title: "Undangan Rapat", Number: "005/123/2026", ExpiresAt: now.Add(24 * time.Hour),
		RequestSHA256: fmt.Sprintf("%064d", 1), Envelope: []byte("eyJhbGciOiJFUzI1NiJ9.e30.c2ln"),
	}
}

func mustCreate(t *testing.T, s store.Store, l *store.Letter) *store.Letter {
	t.Helper()
	got, created, err := s.Create(ctx, l)
	if err != nil || !created {
		t.Fatalf("create: created %v, %v", created, err)
	}
	return got
}

func setState(st store.State, reason string) func(*store.Letter) (bool, error) {
	return func(l *store.Letter) (bool, error) {
		l.State, l.Reason = st, reason
		return true, nil
	}
}

func testCreateGet(t *testing.T, s store.Store) {
	l := NewLetter("pemda", "kendari-setda-01")
	got := mustCreate(t, s, l)
	if got.State != store.Queued || got.Seq == 0 || got.CreatedAt.IsZero() {
		t.Fatalf("created %+v", got)
	}
	back, err := s.Get(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.Envelope) != string(l.Envelope) || back.Title != l.Title || back.State != store.Queued || back.Result != nil {
		t.Fatalf("read back %+v", back)
	}
	if _, err := s.Get(ctx, api.NewJobID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown letter: %v, want ErrNotFound", err)
	}
}

func testIdempotency(t *testing.T, s store.Store) {
	l := NewLetter("pemda", "kendari-setda-01")
	l.IdempotencyKey = "surat-42"
	first := mustCreate(t, s, l)

	again := NewLetter("pemda", "kendari-setda-01")
	again.IdempotencyKey = "surat-42"
	got, created, err := s.Create(ctx, again)
	if err != nil || created || got.ID != first.ID {
		t.Fatalf("replay: %v created %v, %v; want letter %s", got, created, err, first.ID)
	}
	other := NewLetter("pemda", "kendari-setda-01")
	other.IdempotencyKey, other.RequestSHA256 = "surat-42", fmt.Sprintf("%064d", 2)
	got, created, err = s.Create(ctx, other)
	if !errors.Is(err, store.ErrIdempotencyMismatch) || created || got == nil || got.ID != first.ID {
		t.Fatalf("other request, same key: %v created %v, %v; want ErrIdempotencyMismatch with letter %s", got, created, err, first.ID)
	}
	// Keys are the client's own: another client may use the same one.
	theirs := NewLetter("dinkes", "kendari-setda-01")
	theirs.IdempotencyKey = "surat-42"
	mustCreate(t, s, theirs)
	if _, err := s.Get(ctx, other.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused letter was stored: %v", err)
	}
}

func testChangeEventsDeliveries(t *testing.T, s store.Store) {
	l := mustCreate(t, s, NewLetter("pemda", "kendari-setda-01"))
	sent, err := s.Change(ctx, l.ID, setState(store.Sent, ""))
	if err != nil || sent.State != store.Sent || sent.Seq <= l.Seq {
		t.Fatalf("to sent: %+v %v", sent, err)
	}
	// A change that says "no change" writes nothing.
	same, err := s.Change(ctx, l.ID, func(*store.Letter) (bool, error) { return false, nil })
	if err != nil || same.Seq != sent.Seq {
		t.Fatalf("no change: %+v %v", same, err)
	}
	boom := errors.New("boom")
	if _, err := s.Change(ctx, l.ID, func(l *store.Letter) (bool, error) { l.State = store.Failed; return true, boom }); !errors.Is(err, boom) {
		t.Fatalf("fn's error: %v", err)
	}
	signed, err := s.Change(ctx, l.ID, func(l *store.Letter) (bool, error) {
		l.State, l.Result = store.Signed, []byte(`{"v":1}`)
		return true, nil
	})
	if err != nil || signed.State != store.Signed {
		t.Fatalf("to signed: %+v %v", signed, err)
	}
	back, err := s.Get(ctx, l.ID)
	if err != nil || string(back.Result) != `{"v":1}` || back.State != store.Signed {
		t.Fatalf("read back %+v %v", back, err)
	}
	evs, err := s.Events(ctx, "pemda", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var states []store.State
	for i, ev := range evs {
		if ev.LetterID != l.ID || (i > 0 && ev.Seq <= evs[i-1].Seq) {
			t.Fatalf("events %+v", evs)
		}
		states = append(states, ev.State)
	}
	if !slices.Equal(states, []store.State{store.Queued, store.Sent, store.Signed}) {
		t.Fatalf("event states %v", states)
	}
	if later, err := s.Events(ctx, "pemda", evs[1].Seq, 100); err != nil || len(later) != 1 || later[0].State != store.Signed {
		t.Fatalf("events after %d: %+v %v", evs[1].Seq, later, err)
	}
	if none, err := s.Events(ctx, "dinkes", 0, 100); err != nil || len(none) != 0 {
		t.Fatalf("another client's events: %+v %v", none, err)
	}
	dl, err := s.Deliveries(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 6 { // three events, two endpoints each
		t.Fatalf("%d deliveries, want 6: %+v", len(dl), dl)
	}
	for _, d := range dl {
		if d.Client != "pemda" || d.Done || d.Event.LetterID != l.ID || (d.Endpoint != "primary" && d.Endpoint != "archive") {
			t.Fatalf("delivery %+v", d)
		}
	}
	dinkes := mustCreate(t, s, NewLetter("dinkes", "kendari-setda-01"))
	if dl, err := s.Deliveries(ctx, dinkes.ID); err != nil || len(dl) != 0 {
		t.Fatalf("a client without hooks got deliveries %+v %v", dl, err)
	}
}

func testFinalStaysFinal(t *testing.T, s store.Store) {
	l := mustCreate(t, s, NewLetter("pemda", "kendari-setda-01"))
	if _, err := s.Change(ctx, l.ID, setState(store.Rejected, "rejected_by_signer")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Change(ctx, l.ID, setState(store.Signed, "")); !errors.Is(err, store.ErrFinal) {
		t.Fatalf("final letter changed state: %v, want ErrFinal", err)
	}
	if back, _ := s.Get(ctx, l.ID); back.State != store.Rejected {
		t.Fatalf("state %s", back.State)
	}
	if _, err := s.Change(ctx, api.NewJobID(), setState(store.Sent, "")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown letter: %v", err)
	}
}

func testListPages(t *testing.T, s store.Store) {
	var ids []string
	for i := range 7 {
		l := NewLetter("pemda", "kendari-setda-01")
		if i%2 == 1 {
			l.Terminal = "kendari-setda-02"
		}
		mustCreate(t, s, l)
		ids = append(ids, l.ID)
	}
	mustCreate(t, s, NewLetter("dinkes", "kendari-setda-01"))
	if _, err := s.Change(ctx, ids[3], setState(store.Sent, "")); err != nil {
		t.Fatal(err)
	}
	var got []string
	q := store.Query{Client: "pemda", Limit: 3}
	for pages := 0; ; pages++ {
		p, err := s.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range p.Letters {
			if l.Envelope != nil || l.Result != nil {
				t.Fatal("List returned blobs")
			}
			got = append(got, l.ID)
		}
		if p.Next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pages do not end")
		}
		q.After = p.Next
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("listed %v, want %v", got, ids)
	}
	p, err := s.List(ctx, store.Query{Client: "pemda", State: store.Sent})
	if err != nil || len(p.Letters) != 1 || p.Letters[0].ID != ids[3] {
		t.Fatalf("by state: %+v %v", p, err)
	}
	p, err = s.List(ctx, store.Query{Client: "pemda", Terminal: "kendari-setda-02"})
	if err != nil || len(p.Letters) != 3 {
		t.Fatalf("by terminal: %d letters, %v", len(p.Letters), err)
	}
	p, err = s.List(ctx, store.Query{Signer: "198703152010012003"})
	if err != nil || len(p.Letters) != 8 {
		t.Fatalf("by NIP: %d letters, %v", len(p.Letters), err)
	}
}

func testClaimQueued(t *testing.T, s store.Store) {
	a := mustCreate(t, s, NewLetter("pemda", "kendari-setda-01"))
	b := mustCreate(t, s, NewLetter("pemda", "kendari-setda-01"))
	now := time.Now()
	got, err := s.ClaimQueued(ctx, now, now.Add(time.Minute), 10)
	if err != nil || len(got) != 2 || got[0].Envelope == nil {
		t.Fatalf("claim: %d letters %v", len(got), err)
	}
	if again, err := s.ClaimQueued(ctx, now, now.Add(time.Minute), 10); err != nil || len(again) != 0 {
		t.Fatalf("claimed while leased: %d, %v", len(again), err)
	}
	if _, err := s.Change(ctx, a.ID, setState(store.Sent, "")); err != nil {
		t.Fatal(err)
	}
	later := now.Add(2 * time.Minute)
	got, err = s.ClaimQueued(ctx, later, later.Add(time.Minute), 10)
	if err != nil || len(got) != 1 || got[0].ID != b.ID {
		t.Fatalf("after the lease: %+v %v", got, err)
	}
}

func testUnfinished(t *testing.T, s store.Store) {
	a := mustCreate(t, s, NewLetter("pemda", "kendari-setda-01"))
	b := mustCreate(t, s, NewLetter("pemda", "kendari-setda-01"))
	c := mustCreate(t, s, NewLetter("pemda", "kendari-setda-02"))
	for _, id := range []string{a.ID, b.ID, c.ID} {
		if _, err := s.Change(ctx, id, setState(store.Sent, "")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Change(ctx, b.ID, setState(store.Stored, "")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Unfinished(ctx, "kendari-setda-01", time.Now())
	if err != nil || len(got) != 2 || got[0].Envelope == nil {
		t.Fatalf("unfinished: %d %v", len(got), err)
	}
	if _, err := s.Change(ctx, a.ID, setState(store.Signed, "")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Unfinished(ctx, "kendari-setda-01", time.Now()); len(got) != 1 || got[0].ID != b.ID {
		t.Fatalf("after a result: %+v", got)
	}
	if got, _ := s.Unfinished(ctx, "kendari-setda-01", time.Now().Add(48*time.Hour)); len(got) != 0 {
		t.Fatalf("expired letters: %+v", got)
	}
}

func testClaimDeliveries(t *testing.T, s store.Store) {
	l := mustCreate(t, s, NewLetter("pemda", "kendari-setda-01"))
	now := time.Now()
	got, err := s.ClaimDeliveries(ctx, now, now.Add(time.Minute), 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("claim: %d %v", len(got), err)
	}
	if again, _ := s.ClaimDeliveries(ctx, now, now.Add(time.Minute), 10); len(again) != 0 {
		t.Fatalf("claimed while leased: %d", len(again))
	}
	ok, failed := got[0], got[1]
	if err := s.Attempted(ctx, ok.ID, store.Attempt{At: now, Status: 204, OK: true}); err != nil {
		t.Fatal(err)
	}
	retry := now.Add(30 * time.Second)
	if err := s.Attempted(ctx, failed.ID, store.Attempt{At: now, Status: 503, Error: "503 Service Unavailable", NextAt: retry}); err != nil {
		t.Fatal(err)
	}
	if early, _ := s.ClaimDeliveries(ctx, now.Add(10*time.Second), now.Add(time.Minute), 10); len(early) != 0 {
		t.Fatalf("claimed before it was due: %+v", early)
	}
	due, err := s.ClaimDeliveries(ctx, retry, retry.Add(time.Minute), 10)
	if err != nil || len(due) != 1 || due[0].ID != failed.ID || due[0].Attempts != 1 || due[0].LastStatus != 503 {
		t.Fatalf("due again: %+v %v", due, err)
	}
	log, err := s.Deliveries(ctx, l.ID)
	if err != nil || len(log) != 2 {
		t.Fatalf("log %+v %v", log, err)
	}
	for _, d := range log {
		if d.ID == ok.ID && (!d.Done || d.Attempts != 1 || d.LastStatus != 204) {
			t.Fatalf("delivered %+v", d)
		}
	}
}

// Many writers changing one letter: no change is lost.
func testConcurrentChanges(t *testing.T, s store.Store) {
	l := mustCreate(t, s, NewLetter("pemda", "kendari-setda-01"))
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			_, err := s.Change(ctx, l.ID, func(l *store.Letter) (bool, error) {
				l.Detail += fmt.Sprint(i)
				return true, nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	back, err := s.Get(ctx, l.ID)
	if err != nil || len(back.Detail) != writers {
		t.Fatalf("detail %q after %d changes, %v", back.Detail, writers, err)
	}
	evs, _ := s.Events(ctx, "pemda", 0, 100)
	if len(evs) != writers+1 {
		t.Fatalf("%d events, want %d", len(evs), writers+1)
	}
}

func testCountsAndAudit(t *testing.T, s store.Store) {
	a := mustCreate(t, s, NewLetter("pemda", "kendari-setda-01"))
	mustCreate(t, s, NewLetter("pemda", "kendari-setda-01"))
	if _, err := s.Change(ctx, a.ID, setState(store.Sent, "")); err != nil {
		t.Fatal(err)
	}
	c, err := s.Counts(ctx)
	if err != nil || c[store.Queued] != 1 || c[store.Sent] != 1 {
		t.Fatalf("counts %v %v", c, err)
	}
	if err := s.Audit(ctx, store.AuditEntry{At: time.Now(), Client: "pemda", Method: "POST", Path: "/v1/letters", Status: 201, LetterID: a.ID}); err != nil {
		t.Fatal(err)
	}
}
