package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testOptions(c *clock) Options {
	return Options{TerminalID: "kendari-setda-01", Now: c.Now, Logger: quiet, SweepInterval: time.Hour, Retention: 24 * time.Hour}
}

func openTest(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

const signerA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
const signerB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

func testJob(id string, c *clock) Job {
	return Job{ID: id, Signer: signerA, Meta: []byte(`{"title":"Surat Edaran","number":"800/12"}`),
		Envelope: []byte("eyJhbGciOiJFZERTQSJ9." + id), Digests: []Digest{{1, 2, 3}},
		ExpiresAt: c.Now().Add(time.Hour)}
}

func TestOpenLocked(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "q.db")
	openTest(t, path, testOptions(c))
	opts := testOptions(c)
	opts.Timeout = 50 * time.Millisecond
	start := time.Now()
	_, err := Open(path, opts)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: got %v, want ErrLocked", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("second open took %s, want fail fast", time.Since(start))
	}
	if _, err := OpenReadOnly(path, opts); !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only open of a held file: got %v, want ErrLocked", err)
	}
}

func TestOpenReadOnly(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "q.db")
	s, err := Open(path, testOptions(c))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := s.Insert(ctx, testJob("01J0A", c)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path, testOptions(c))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close(ctx)
	if n, err := ro.VerifyAudit(ctx); err != nil || n != 1 {
		t.Fatalf("verify: n=%d err=%v", n, err)
	}
	if _, err := ro.Get(ctx, "01J0A"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ro.Insert(ctx, testJob("01J0B", c)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("insert on read-only: got %v", err)
	}
	st, err := ro.Stats(ctx)
	if err != nil || st.Jobs[Received] != 1 {
		t.Fatalf("stats %+v %v", st, err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "q.db")
	s, err := Open(path, testOptions(c))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return putUint(tx.Bucket(bucketMeta), keySchema, schemaVersion+1)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, testOptions(c)); !errors.Is(err, ErrSchema) {
		t.Fatalf("open newer schema: got %v, want ErrSchema", err)
	}
}

func TestClosed(t *testing.T) {
	c := newClock()
	s, err := Open(filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, _, err := s.Insert(ctx, testJob("x", c)); !errors.Is(err, ErrClosed) {
		t.Fatalf("insert after close: %v", err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("condition not met within %s", timeout)
		}
	}
}

func mustInsert(t testing.TB, s *Store, j Job) Job {
	t.Helper()
	got, created, err := s.Insert(context.Background(), j)
	if err != nil || !created {
		t.Fatalf("insert %s: created=%v err=%v", j.ID, created, err)
	}
	return got
}

func mustMove(t testing.TB, s *Store, id string, c Change) Job {
	t.Helper()
	j, err := s.Transition(context.Background(), id, c)
	if err != nil {
		t.Fatalf("transition %s → %s: %v", id, c.To, err)
	}
	return j
}

func ids(jobs []Job) string {
	out := ""
	for _, j := range jobs {
		out += fmt.Sprintf("%s,", j.ID)
	}
	return out
}
