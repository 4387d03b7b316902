package pgstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/gateway/store"
	"github.com/tekenid/teken/gateway/store/storetest"
	"github.com/tekenid/teken/internal/testenv"
)

func open(t *testing.T, dsn string, hooks store.Hooks) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, Options{Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestContract runs the store contract, each case on a database of its
// own on one server.
func TestContract(t *testing.T) {
	pg := testenv.StartPostgres(t)
	storetest.Run(t, func(t *testing.T, hooks store.Hooks) store.Store {
		return open(t, pg.NewDatabase(t), hooks)
	})
}

// TestMigrateAgain opens a migrated database again, from two instances
// at once: the schema is made once and left alone after.
func TestMigrateAgain(t *testing.T) {
	pg := testenv.StartPostgres(t)
	dsn := pg.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			s, err := Open(context.Background(), dsn, Options{})
			if err == nil {
				err = s.Close()
			}
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
	s := open(t, dsn, nil)
	var versions int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM schema_version`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != 1 {
		t.Fatalf("%d schema versions recorded, want 1", versions)
	}
}

// TestServerCrash kills the server under an open store: what was
// committed is there after the restart, and the store's pool connects
// again by itself.
func TestServerCrash(t *testing.T) {
	pg := testenv.StartPostgres(t)
	s := open(t, pg.NewDatabase(t), storetest.Hooks)
	ctx := context.Background()
	l, _, err := s.Create(ctx, storetest.NewLetter("pemda", "kendari-setda-01"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Change(ctx, l.ID, func(l *store.Letter) (bool, error) { l.State = store.Sent; return true, nil }); err != nil {
		t.Fatal(err)
	}
	pg.Kill()
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	// The first query may meet a connection the crash broke; the pool
	// drops it and dials anew.
	var back *store.Letter
	if err := testenv.WaitFor(ctx, 10*time.Second, func() error {
		back, err = s.Get(ctx, l.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if back.State != store.Sent {
		t.Fatalf("after the crash the letter is %s, want sent", back.State)
	}
	if evs, err := s.Events(ctx, "pemda", 0, 10); err != nil || len(evs) != 2 {
		t.Fatalf("after the crash %d events, %v; want 2", len(evs), err)
	}
}

// TestTwoInstances shares one database between two stores, as two
// gateway instances behind a load balancer: each queued letter and each
// delivery is claimed by one of them while leased, and events appended
// from both become visible in the order of their Seq.
func TestTwoInstances(t *testing.T) {
	pg := testenv.StartPostgres(t)
	dsn := pg.NewDatabase(t)
	a, b := open(t, dsn, storetest.Hooks), open(t, dsn, storetest.Hooks)
	ctx := context.Background()

	const letters = 60
	var ids []string
	for range letters {
		l, created, err := a.Create(ctx, storetest.NewLetter("pemda", "kendari-setda-01"))
		if err != nil || !created {
			t.Fatalf("create: %v %v", created, err)
		}
		ids = append(ids, l.ID)
	}

	t.Run("ClaimQueued", func(t *testing.T) {
		now := time.Now()
		got := claimAll(t, []*Store{a, b}, func(s *Store) ([]string, error) {
			ls, err := s.ClaimQueued(ctx, now, now.Add(time.Hour), 3)
			var out []string
			for _, l := range ls {
				out = append(out, l.ID)
			}
			return out, err
		})
		slices.Sort(got)
		if !slices.Equal(got, ids) {
			t.Fatalf("claimed %d letters (%d distinct), want each of %d once", len(got), len(slices.Compact(slices.Clone(got))), letters)
		}
	})

	t.Run("ClaimDeliveries", func(t *testing.T) {
		now := time.Now()
		got := claimAll(t, []*Store{a, b}, func(s *Store) ([]string, error) {
			ds, err := s.ClaimDeliveries(ctx, now, now.Add(time.Hour), 5)
			var out []string
			for _, d := range ds {
				out = append(out, fmt.Sprint(d.ID))
			}
			return out, err
		})
		if len(got) != 2*letters || len(slices.Compact(slices.Sorted(slices.Values(got)))) != 2*letters {
			t.Fatalf("claimed %d deliveries, want each of %d once", len(got), 2*letters)
		}
	})

	t.Run("EventsInSeqOrder", func(t *testing.T) {
		// Writers on both instances change letters while a reader follows
		// the feed by its cursor alone. Were an event to become visible
		// before one with a smaller Seq, the reader would step past the
		// smaller one and never see it.
		const writers, changes = 8, 25
		stores := []*Store{a, b}
		done := make(chan struct{})
		var seen []store.Event
		readerErr := make(chan error, 1)
		go func() {
			var after uint64
			read := func() error {
				evs, err := b.Events(ctx, "pemda", after, 1000)
				if err != nil {
					return err
				}
				for _, ev := range evs {
					if ev.Seq <= after {
						return fmt.Errorf("event %d after cursor %d", ev.Seq, after)
					}
					after = ev.Seq
				}
				seen = append(seen, evs...)
				return nil
			}
			for {
				select {
				case <-done:
					readerErr <- read() // what the last commits added
					return
				default:
				}
				if err := read(); err != nil {
					readerErr <- err
					return
				}
			}
		}()
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				s := stores[w%2]
				for i := range changes {
					var err error
					if i%5 == 0 {
						_, _, err = s.Create(ctx, storetest.NewLetter("pemda", "kendari-setda-02"))
					} else {
						_, err = s.Change(ctx, ids[(w*changes+i)%letters], func(l *store.Letter) (bool, error) {
							l.Detail += "x"
							return true, nil
						})
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(done)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if err := <-readerErr; err != nil {
			t.Fatal(err)
		}
		all, err := a.Events(ctx, "pemda", 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		if want := letters + writers*changes; len(all) != want {
			t.Fatalf("%d events, want %d", len(all), want)
		}
		if len(seen) != len(all) {
			t.Fatalf("the reader saw %d of %d events: one became visible before a smaller Seq", len(seen), len(all))
		}
		for i := range all {
			if seen[i].Seq != all[i].Seq {
				t.Fatalf("event %d: the reader saw Seq %d, the feed holds %d", i, seen[i].Seq, all[i].Seq)
			}
		}
	})
}

// claimAll claims from every store concurrently, two claimers per store,
// until nothing is left, and returns every claimed id.
func claimAll(t *testing.T, stores []*Store, claim func(*Store) ([]string, error)) []string {
	t.Helper()
	var (
		mu  sync.Mutex
		got []string
		wg  sync.WaitGroup
	)
	errs := make(chan error, 2*len(stores))
	for i := range 2 * len(stores) {
		s := stores[i%len(stores)]
		wg.Go(func() {
			for {
				ids, err := claim(s)
				if err != nil {
					errs <- err
					return
				}
				if len(ids) == 0 {
					return
				}
				mu.Lock()
				got = append(got, ids...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return got
}
