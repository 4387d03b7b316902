package transport

import (
	"context"
	"slices"
	"sync"
	"time"
)

// PendingJob is a job the dispatcher published and has no result for yet.
type PendingJob struct {
	Terminal  string
	JobID     string
	ExpiresAt time.Time
	Envelope  []byte // the signed JWS as published
}

// JobStore keeps the jobs a Dispatcher published and not yet finished, so it
// can publish them again when a terminal's Sync shows it lacks them. A
// central system that must survive its own restart implements it on its
// database; MemoryJobs keeps them in memory.
type JobStore interface {
	Put(ctx context.Context, j PendingJob) error
	// Pending returns the unfinished jobs of one terminal, oldest first.
	Pending(ctx context.Context, terminal string) ([]PendingJob, error)
	// Remove forgets a job; removing an unknown job is not an error.
	Remove(ctx context.Context, terminal, jobID string) error
}

// ResultStore remembers which results were already taken, so a result the
// terminal sends again (its ResultAck was lost) is acknowledged again but
// handed to the caller only once. MemoryResults keeps a bounded memory.
type ResultStore interface {
	Seen(ctx context.Context, terminal, jobID string) (bool, error)
	Add(ctx context.Context, terminal, jobID string) error
}

// MemoryJobs is a JobStore in memory.
type MemoryJobs struct {
	mu   sync.Mutex
	seq  uint64
	jobs map[string]map[string]memJob // terminal → job id → job
}

type memJob struct {
	PendingJob
	seq uint64
}

var _ JobStore = (*MemoryJobs)(nil)

// NewMemoryJobs returns an empty MemoryJobs.
func NewMemoryJobs() *MemoryJobs {
	return &MemoryJobs{jobs: make(map[string]map[string]memJob)}
}

// Put stores or replaces a job.
func (m *MemoryJobs) Put(_ context.Context, j PendingJob) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.jobs[j.Terminal]
	if t == nil {
		t = make(map[string]memJob)
		m.jobs[j.Terminal] = t
	}
	m.seq++
	t[j.JobID] = memJob{PendingJob: j, seq: m.seq}
	return nil
}

// Pending returns the terminal's unexpired jobs in the order they were put,
// and forgets the expired ones: the terminal would refuse them.
func (m *MemoryJobs) Pending(_ context.Context, terminal string) ([]PendingJob, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	t := m.jobs[terminal]
	all := make([]memJob, 0, len(t))
	for id, j := range t {
		if !j.ExpiresAt.IsZero() && now.After(j.ExpiresAt) {
			delete(t, id)
			continue
		}
		all = append(all, j)
	}
	slices.SortFunc(all, func(a, b memJob) int { return int(a.seq) - int(b.seq) })
	out := make([]PendingJob, len(all))
	for i, j := range all {
		out[i] = j.PendingJob
	}
	return out, nil
}

// Remove forgets one job.
func (m *MemoryJobs) Remove(_ context.Context, terminal, jobID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.jobs[terminal], jobID)
	return nil
}

// Len returns the number of jobs held, across all terminals.
func (m *MemoryJobs) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, t := range m.jobs {
		n += len(t)
	}
	return n
}

// MemoryResults is a ResultStore that remembers the last Limit results. A
// result older than that which arrives again is handed to the caller again;
// the caller's own store is the final judge of duplicates.
type MemoryResults struct {
	mu    sync.Mutex
	limit int
	seen  map[string]struct{}
	ring  []string
	next  int
}

var _ ResultStore = (*MemoryResults)(nil)

// NewMemoryResults returns a MemoryResults that remembers up to limit
// results (at least one).
func NewMemoryResults(limit int) *MemoryResults {
	limit = max(limit, 1)
	return &MemoryResults{limit: limit, seen: make(map[string]struct{}, limit), ring: make([]string, 0, limit)}
}

func resultKey(terminal, jobID string) string { return terminal + "\x00" + jobID }

// Seen reports whether the result was added and not yet forgotten.
func (m *MemoryResults) Seen(_ context.Context, terminal, jobID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.seen[resultKey(terminal, jobID)]
	return ok, nil
}

// Add remembers a result, forgetting the oldest when full.
func (m *MemoryResults) Add(_ context.Context, terminal, jobID string) error {
	k := resultKey(terminal, jobID)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.seen[k]; ok {
		return nil
	}
	if len(m.ring) < m.limit {
		m.ring = append(m.ring, k)
	} else {
		delete(m.seen, m.ring[m.next])
		m.ring[m.next] = k
		m.next = (m.next + 1) % m.limit
	}
	m.seen[k] = struct{}{}
	return nil
}
