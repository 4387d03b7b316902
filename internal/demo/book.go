package demo

import (
	"context"
	"crypto"
	"fmt"
	"sync"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/transport"
)

// maxBooked bounds the jobs the book keeps; the oldest goes first. A job
// leaves it when its result has been checked.
const maxBooked = 1000

// book keeps the documents of every job seen on its way to the demo's
// terminal, by job and document id, whoever dispatched it (the demo
// itself, or `tekenctl dispatch` with the key the demo prints), so that
// each result is checked against the very bytes of the job it belongs to.
type book struct {
	mu      sync.Mutex
	jobs    map[string]map[string]api.Document // job id → document id → document
	order   []string                           // job ids, oldest first
	changed chan struct{}                      // closed and replaced on every put
}

func newBook() *book {
	return &book{jobs: map[string]map[string]api.Document{}, changed: make(chan struct{})}
}

// put records a job's documents; the same job again changes nothing.
func (b *book) put(j *api.Job) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.jobs[j.JobID]; ok {
		return
	}
	docs := make(map[string]api.Document, len(j.Documents))
	for _, d := range j.Documents {
		docs[d.ID] = d
	}
	b.jobs[j.JobID] = docs
	b.order = append(b.order, j.JobID)
	if len(b.order) > maxBooked {
		delete(b.jobs, b.order[0])
		b.order = b.order[1:]
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

// documents returns the documents of a job, waiting up to grace for a job
// the jobs watch has not handed over yet: it sees the envelope at the same
// moment as the terminal, on another connection.
func (b *book) documents(ctx context.Context, jobID string, grace time.Duration) (map[string]api.Document, bool) {
	t := time.NewTimer(grace)
	defer t.Stop()
	for {
		b.mu.Lock()
		docs, ok := b.jobs[jobID]
		changed := b.changed
		b.mu.Unlock()
		if ok {
			return docs, true
		}
		select {
		case <-changed:
		case <-t.C:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
}

// forget drops a job whose result was checked.
func (b *book) forget(jobID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.jobs[jobID]; !ok {
		return
	}
	delete(b.jobs, jobID)
	for i, id := range b.order {
		if id == jobID {
			b.order = append(b.order[:i], b.order[i+1:]...)
			break
		}
	}
}

// watchJobs books every job published to the demo's terminal that the
// terminal would take: signed with the dispatcher key (pub) and valid. It
// reads on a clean session of its own, so it sees the jobs dispatched
// while the demo runs.
func watchJobs(ctx context.Context, brokerURL string, pub crypto.PublicKey, b *book) (*transport.Monitor, error) {
	kid, err := api.KeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("jobs watch: %w", err)
	}
	v := &api.Verifier{Keys: map[string]crypto.PublicKey{kid: pub}, Terminal: terminalID}
	m, err := transport.OpenMonitor(ctx, transport.MonitorConfig{
		Connection: transport.Connection{Brokers: []string{brokerURL}, ClientID: "teken-demo-jobs"},
		Filters:    []string{api.AllTerminals(api.DefaultRoot, api.KindJobs)},
		Handle: func(msg transport.Message) {
			// What the terminal refuses yields no result to check.
			if j, _, err := v.VerifyJob(msg.Payload); err == nil {
				b.put(j)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("jobs watch: %w", err)
	}
	return m, nil
}
