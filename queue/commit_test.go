package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestBatchIsolation queues a mix of good and failing work so that the
// committer takes it as one transaction, and checks each caller gets its
// own answer.
func TestBatchIsolation(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	mustInsert(t, s, testJob("old", c))

	// Hold the committer inside a transaction while the queue fills, so
	// everything queued meanwhile goes into the next transaction together.
	gate, entered := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.submit(ctx, false, func(*bolt.Tx, *delta) error { close(entered); <-gate; return nil })
	}()
	<-entered
	var wg sync.WaitGroup
	errs := make(map[string]error)
	var emu sync.Mutex
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f()
			emu.Lock()
			errs[name] = err
			emu.Unlock()
		}()
	}
	for i := range 20 {
		id := fmt.Sprintf("new%02d", i)
		run(id, func() error { _, _, err := s.Insert(ctx, testJob(id, c)); return err })
	}
	run("dup", func() error {
		_, created, err := s.Insert(ctx, testJob("old", c))
		if err == nil && created {
			return errors.New("duplicate created")
		}
		return err
	})
	run("bad transition", func() error {
		_, err := s.Transition(ctx, "old", Change{To: Signing})
		return err
	})
	run("unknown job", func() error {
		_, err := s.Transition(ctx, "ghost", Change{To: Ready})
		return err
	})
	waitQueued(t, s, 23)
	close(gate)
	wg.Wait()

	for name, err := range errs {
		var te *TransitionError
		switch name {
		case "bad transition":
			if !errors.As(err, &te) {
				t.Errorf("%s: got %v, want *TransitionError", name, err)
			}
		case "unknown job":
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: got %v, want ErrNotFound", name, err)
			}
		default:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	got, _ := s.ByState(ctx, Received, 0)
	if len(got) != 21 {
		t.Fatalf("%d received jobs, want 21", len(got))
	}
	if n, err := s.VerifyAudit(ctx); err != nil || n != 21 {
		t.Fatalf("audit n=%d %v", n, err)
	}
}

// waitQueued waits (with the lock released) until n ops are queued.
func waitQueued(t *testing.T, s *Store, n int) {
	waitFor(t, 10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.queue) >= n
	})
}

// TestGroupCommitGathers checks that concurrent writers share transactions.
func TestGroupCommitGathers(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	before := s.commits.Load()
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				mustInsert(t, s, testJob(fmt.Sprintf("w%02d-%02d", w, i), c))
			}
		}()
	}
	wg.Wait()
	txs := s.commits.Load() - before
	if txs >= 640 {
		t.Fatalf("%d write transactions for 640 inserts; no grouping", txs)
	}
	t.Logf("640 inserts in %d transactions", txs)
}

// TestCommitCancelledWait shows that a caller whose context ends
// while waiting is told so, and that a retry is idempotent.
func TestCommitCancelledWait(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Insert(ctx, testJob("a", c)); !errors.Is(err, context.Canceled) {
		t.Fatalf("insert with cancelled ctx: %v", err)
	}
	mustInsert(t, s, testJob("a", c))
}
