package daemon

import (
	"context"
	"slices"
	"strings"

	"github.com/tekenid/teken/queue"
)

// readyJobs are the jobs waiting for this signer, and only for this signer,
// without their envelopes: the page's list is refreshed on every step of a
// batch and must not copy every document each time. The most urgent come
// first: by expires_at (the due date; none is last), then received_at,
// then id.
func (f *flow) readyJobs(ctx context.Context, signer string) ([]queue.Job, error) {
	all, err := f.store.BySignerHeads(ctx, signer, 0)
	if err != nil {
		return nil, err
	}
	now := f.now()
	out := all[:0]
	for _, j := range all {
		if j.State == queue.Ready && j.Signer == signer && (j.ExpiresAt.IsZero() || j.ExpiresAt.After(now)) {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, byDueDate)
	return out, nil
}

// byDueDate orders jobs by expires_at, a job without one last, then by
// received_at, then by id.
func byDueDate(a, b queue.Job) int {
	switch {
	case a.ExpiresAt.IsZero() != b.ExpiresAt.IsZero():
		if a.ExpiresAt.IsZero() {
			return 1
		}
		return -1
	case !a.ExpiresAt.Equal(b.ExpiresAt):
		return a.ExpiresAt.Compare(b.ExpiresAt)
	case !a.ReceivedAt.Equal(b.ReceivedAt):
		return a.ReceivedAt.Compare(b.ReceivedAt)
	}
	return strings.Compare(a.ID, b.ID)
}

// pageListLimit bounds the letters the page lists, the most urgent first:
// after a week offline an official may have thousands waiting, more than
// a page can show or anyone can scroll, and every view carries the list.
// The page names how many more there are; each signed batch brings the
// next ones up.
const pageListLimit = 100
