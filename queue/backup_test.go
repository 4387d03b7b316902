package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Backup copies one moment of a store that goes on committing: the copy
// opens read-only, each job in it has its audit entry, and its chain holds.
func TestBackupOfALiveStore(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	for i := range 100 {
		if _, _, err := s.Insert(ctx, testJob(fmt.Sprintf("before-%03d", i), c)); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, err := s.Insert(ctx, testJob(fmt.Sprintf("during-%05d", i), c)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := range 5 {
		var b bytes.Buffer
		n, err := s.Backup(ctx, &b)
		if err != nil || n != int64(b.Len()) {
			t.Fatalf("backup %d: %d bytes, %d written, %v", i, n, b.Len(), err)
		}
		path := filepath.Join(t.TempDir(), "copy.db")
		if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		cp, err := OpenReadOnly(path, testOptions(c))
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		entries, err := cp.VerifyAudit(ctx)
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		st, err := cp.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if jobs := st.Jobs[Received]; jobs < 100 || uint64(jobs) != entries {
			t.Errorf("backup %d: %d jobs, %d audit entries; want one entry per job, at least 100", i, jobs, entries)
		}
		cp.Close(ctx)
	}
	close(stop)
	wg.Wait()
}

// A writer that fails ends the backup with its error, and the store goes on.
func TestBackupToAFailingWriter(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	broken := errors.New("disk gone")
	// bbolt quotes the writer's error without wrapping it.
	if _, err := s.Backup(ctx, &failAfter{n: 4096, err: broken}); err == nil || !strings.Contains(err.Error(), broken.Error()) {
		t.Fatalf("backup to a failing writer: %v", err)
	}
	if _, _, err := s.Insert(ctx, testJob("after", c)); err != nil {
		t.Fatalf("insert after a failed backup: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Backup(cctx, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Errorf("backup with its context ended: %v", err)
	}
}

// failAfter takes n bytes, then fails with err.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, f.err
	}
	f.n -= len(p)
	return len(p), nil
}
