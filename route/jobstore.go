package route

import (
	"cmp"
	"context"
	"slices"

	"github.com/tekenid/teken/transport"
)

// Put is part of transport.JobStore: a route's job is in the ledger
// already; any other job is kept in memory.
func (r *Router) Put(ctx context.Context, p transport.PendingJob) error {
	r.mu.Lock()
	_, ours := r.b.jobs[p.JobID]
	if ours {
		delete(r.dropped, p.JobID) // published again on purpose
	}
	r.mu.Unlock()
	if ours {
		return nil
	}
	return r.others.Put(ctx, p)
}

// Pending is part of transport.JobStore: the current, unexpired jobs of
// the running routes at the terminal, oldest first, then other jobs.
func (r *Router) Pending(ctx context.Context, terminal string) ([]transport.PendingJob, error) {
	now := r.cfg.Now()
	r.mu.Lock()
	type job struct {
		p   transport.PendingJob
		seq uint64
	}
	var jobs []job
	for _, s := range r.b.routes {
		if s.State != RouteRunning {
			continue
		}
		st := &s.Steps[s.Current]
		if st.Terminal != terminal || st.JobID == "" || r.dropped[st.JobID] || (!st.ExpiresAt.IsZero() && now.After(st.ExpiresAt)) {
			continue
		}
		jobs = append(jobs, job{transport.PendingJob{Terminal: terminal, JobID: st.JobID, ExpiresAt: st.ExpiresAt, Envelope: st.Envelope}, st.seq})
	}
	r.mu.Unlock()
	slices.SortFunc(jobs, func(a, b job) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]transport.PendingJob, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, j.p)
	}
	rest, err := r.others.Pending(ctx, terminal)
	if err != nil {
		return nil, err
	}
	return append(out, rest...), nil
}

// Remove is part of transport.JobStore. A route's job the dispatcher
// forgets (a refusal, a cancel) is no longer re-sent; the route itself
// moves on only by a result or a refusal's receipt.
func (r *Router) Remove(ctx context.Context, terminal, jobID string) error {
	r.mu.Lock()
	ref, ours := r.b.jobs[jobID]
	if ours {
		if s := r.b.routes[ref.route]; s.State == RouteRunning && s.Current == ref.step {
			r.dropped[jobID] = true
		}
	}
	r.mu.Unlock()
	if ours {
		return nil
	}
	return r.others.Remove(ctx, terminal, jobID)
}
