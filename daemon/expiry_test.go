package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/queue"
)

func jobIDs(r *storeRig) []string {
	var out []string
	for _, j := range r.pages.last().Jobs {
		out = append(out, j.ID)
	}
	return out
}

// When the sweeper expires a letter, after its transaction committed: the
// expiry is counted in teken_jobs_completed_total{outcome="expired"}, the
// outbox is told (its Result is stored by then), and the page of the
// present signer is published again without the letter — nothing else
// publishes in this rig.
func TestExpiryCountedAndShownAtOnce(t *testing.T) {
	r := newStoreRig(t, t.TempDir(), nil)
	r.d.running.Store(true) // as Run does before anything reaches the page
	ctx := context.Background()
	stays := r.storeJob(t, "Surat Tetap", time.Now().Add(24*time.Hour))
	goes := r.storeJob(t, "Surat Singkat", time.Now().Add(1500*time.Millisecond).Truncate(time.Second).Add(time.Second))
	r.d.flow.presence(ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	if got := jobIDs(r); len(got) != 2 {
		t.Fatalf("page lists %v, want both letters", got)
	}
	select { // drained: only the expiry may kick it again
	case <-r.d.outbox.kick:
	default:
	}
	expired := r.d.metrics.jobsCompleted.WithLabelValues(queue.Expired.String())
	// The sweeper counts, tells the outbox, then publishes the page, on
	// its own goroutine: the wait is for the last of them.
	err := testenv.WaitFor(ctx, 30*time.Second, func() error {
		if n := testutil.ToFloat64(expired); n != 1 {
			return errors.New("expiry not counted yet")
		}
		if got := jobIDs(r); !slices.Equal(got, []string{stays}) {
			return fmt.Errorf("page lists %v, want only %s", got, stays)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.d.outbox.kick:
	default:
		t.Fatal("the outbox was not told of the expiry")
	}
	if res, err := r.store.Undelivered(ctx, 0, 0); err != nil || len(res) != 1 || res[0].JobID != goes || res[0].Outcome != queue.Expired {
		t.Fatalf("outbox %+v %v, want the expired Result", res, err)
	}
}

// Before Run there is no page: an expiry then (the sweep at Open) is
// counted and told to the outbox, and the flow is not reached.
func TestExpiryBeforeRun(t *testing.T) {
	r := newStoreRig(t, t.TempDir(), nil)
	before := published(r.pages)
	r.d.jobsExpired([]queue.Job{{ID: "a", Signer: r.signer, State: queue.Done, Outcome: queue.Expired}})
	if n := testutil.ToFloat64(r.d.metrics.jobsCompleted.WithLabelValues("expired")); n != 1 {
		t.Fatalf("expired counted %v, want 1", n)
	}
	select {
	case <-r.d.outbox.kick:
	default:
		t.Fatal("the outbox was not told")
	}
	if published(r.pages) != before {
		t.Fatal("the page was published before Run")
	}
}

// published is how many views p recorded.
func published(p *pageRecorder) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.views)
}
