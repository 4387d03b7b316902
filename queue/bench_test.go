package queue

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// benchJob is a job with a 1 KiB envelope, like a small signed job.
func benchJob(id string) Job {
	return Job{ID: id, Signer: signerA, Meta: []byte(`{"title":"Nota Dinas","number":"800/1/2026"}`),
		Envelope: make([]byte, 1024), Digests: []Digest{{1}}}
}

// benchDir is where benchmark files live: TEKEN_BENCH_DIR if set (to
// compare disks, e.g. /dev/shm to take fsync latency out), else a temp dir.
func benchDir(b *testing.B) string {
	if d := os.Getenv("TEKEN_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "queue-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(benchDir(b), "q.db"), Options{Logger: quiet, TerminalID: "bench", SweepInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// BenchmarkInsertSerial measures durable inserts per second from one writer.
func BenchmarkInsertSerial(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, _, err := s.Insert(ctx, benchJob(fmt.Sprintf("%016d", i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "inserts/s")
}

// BenchmarkIntakeStore measures what storing one admitted job costs a
// serial writer, as tekend's intake does it: insert then a transition to
// ready (two durable transactions, as before), against InsertReady (one),
// in the same run.
func BenchmarkIntakeStore(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		store func(s *Store, j Job) error
	}{
		{"insert then ready", func(s *Store, j Job) error {
			if _, _, err := s.Insert(ctx, j); err != nil {
				return err
			}
			_, err := s.Transition(ctx, j.ID, Change{To: Ready})
			return err
		}},
		{"insert ready", func(s *Store, j Job) error {
			_, _, err := s.InsertReady(ctx, j)
			return err
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchStore(b)
			start := time.Now()
			i := 0
			for b.Loop() {
				if err := tc.store(s, benchJob(fmt.Sprintf("%016d", i))); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(i)/time.Since(start).Seconds(), "jobs/s")
		})
	}
}

// BenchmarkInsertParallel64 measures durable inserts per second from 64
// concurrent writers sharing group commits.
func BenchmarkInsertParallel64(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if _, _, err := s.Insert(ctx, benchJob(fmt.Sprintf("%016d", i))); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "inserts/s")
	b.ReportMetric(float64(s.commits.Load())/float64(b.N), "commits/insert")
}

// BenchmarkOutboxDrain measures how fast a publisher reads the backlog of
// undelivered 1 KiB results in pages of 256.
func BenchmarkOutboxDrain(b *testing.B) {
	s := benchStore(b)
	const backlog = 20000
	payload := make([]byte, 1024)
	err := s.db.Update(func(tx *bolt.Tx) error {
		var d delta
		for i := range backlog {
			r := Result{JobID: fmt.Sprintf("%016d", i), Outcome: Signed, Payload: payload, CreatedAt: time.Now()}
			if _, err := s.putResult(tx, &d, &r, false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	read := 0
	var after uint64
	for read < b.N {
		page, err := s.Undelivered(ctx, after, 256)
		if err != nil {
			b.Fatal(err)
		}
		if len(page) == 0 {
			after = 0 // wrap around the backlog
			continue
		}
		after = page[len(page)-1].Seq
		read += len(page)
	}
	b.ReportMetric(float64(read)/time.Since(start).Seconds(), "results/s")
}

// BenchmarkBaselineBoltUpdate is the reference point: one bbolt Update
// (two fdatasyncs) per 1 KiB record, no store logic. It shows what the
// disk allows before group commit.
func BenchmarkBaselineBoltUpdate(b *testing.B) {
	db, err := bolt.Open(filepath.Join(benchDir(b), "raw.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	val := make([]byte, 1024)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return bk.Put([]byte(fmt.Sprintf("%016d", i)), val)
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
}

// BenchmarkOpenBacklog measures opening a store that holds n ready jobs
// (the start-up a terminal back from a long outage does) and what the
// open touches: the process's resident memory grown by it (VmRSS; bbolt
// maps the file, and pages only come in when read).
func BenchmarkOpenBacklog(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			path := filepath.Join(benchDir(b), "q.db")
			s, err := Open(path, Options{Logger: quiet, TerminalID: "bench", SweepInterval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 64 {
				wg.Go(func() {
					for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
						j := benchJob(fmt.Sprintf("%016d", i))
						j.ExpiresAt = time.Now().Add(30 * 24 * time.Hour)
						if _, _, err := s.InsertReady(ctx, j); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := s.Close(ctx); err != nil {
				b.Fatal(err)
			}
			var grown int64
			for b.Loop() {
				before := vmRSS(b)
				s, err := Open(path, Options{Logger: quiet, TerminalID: "bench", SweepInterval: time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				if st, _ := s.Stats(ctx); st.Jobs[Ready] != n {
					b.Fatalf("%d ready jobs, want %d", st.Jobs[Ready], n)
				}
				grown = vmRSS(b) - before
				if err := s.Close(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(grown)/(1<<20), "MiB-rss-grown")
		})
	}
}

// vmRSS is this process's resident set in bytes (/proc/self/status).
func vmRSS(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
