package daemon

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/queue"
)

// fakeOutboxStore holds undelivered results in memory.
type fakeOutboxStore struct {
	mu      sync.Mutex
	results []queue.Result
}

func (f *fakeOutboxStore) Undelivered(_ context.Context, after uint64, limit int) ([]queue.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []queue.Result
	for _, r := range f.results {
		if r.Seq > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeOutboxStore) ack(jobID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.results {
		if r.JobID == jobID {
			f.results = append(f.results[:i], f.results[i+1:]...)
			return
		}
	}
}

// countingPublisher records every publish; the outbox publishes several
// at once.
type countingPublisher struct {
	mu   sync.Mutex
	sent map[string]int
}

func (p *countingPublisher) PublishResult(_ context.Context, jobID string, _ []byte) error {
	p.mu.Lock()
	p.sent[jobID]++
	p.mu.Unlock()
	return nil
}

func (p *countingPublisher) Connected() bool { return true }

// TestOutboxResendsWithBackoff: an unacknowledged result goes out again on
// a doubling schedule capped at the maximum, while connected and without
// any reconnect; an acknowledged one stops; a reset sends at once.
func TestOutboxResendsWithBackoff(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	store := &fakeOutboxStore{results: []queue.Result{{Seq: 1, JobID: "A", Payload: []byte("a")}, {Seq: 2, JobID: "B", Payload: []byte("b")}}}
	pub := &countingPublisher{sent: map[string]int{}}
	o := newOutbox(store, func() resultPublisher { return pub }, slog.New(slog.DiscardHandler))
	o.now = func() time.Time { return now }
	var sch schedule
	sch.clear()
	step := func(d time.Duration, want map[string]int) {
		t.Helper()
		now = now.Add(d)
		clear(pub.sent)
		if err := o.drain(context.Background(), &sch, 30*time.Second, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(pub.sent, want) {
			t.Fatalf("after %v: published %v, want %v", d, pub.sent, want)
		}
	}
	both := map[string]int{"A": 1, "B": 1}
	none := map[string]int{}
	step(0, both)
	step(29*time.Second, none)
	step(time.Second, both) // 30 s
	step(59*time.Second, none)
	step(time.Second, both) // then 1 min
	step(119*time.Second, none)
	step(time.Second, both) // then 2 min, the cap
	step(2*time.Minute, both)
	store.ack("A")
	step(2*time.Minute, map[string]int{"B": 1})
	if _, ok := sch.state[1]; ok {
		t.Error("the acknowledged result stays scheduled")
	}
	// A new result goes out at once, between the others' resends.
	store.results = append(store.results, queue.Result{Seq: 3, JobID: "C", Payload: []byte("c")})
	step(time.Second, map[string]int{"C": 1})
	// A reconnect or a SyncRequest: everything now.
	sch.clear()
	step(0, map[string]int{"B": 1, "C": 1})
}
