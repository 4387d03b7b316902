package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/internal/testenv"
)

// A terminal back from a week offline: the present official's letters
// arrive by the hundred. The page gets a few coalesced refreshes rather
// than one per letter, lists the most urgent pageListLimit and counts
// them all.
func TestPageListOfManyLetters(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	if v := r.pages.last(); v.Signer == nil {
		t.Fatalf("token not read: %+v", v)
	}
	before := r.pages.count()
	const n = pageListLimit + 50
	for range n {
		r.storeJob(t, r.signer, 1)
	}
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		if v := r.pages.last(); v.JobsTotal != n {
			return fmt.Errorf("page counts %d letters, want %d", v.JobsTotal, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	v := r.pages.last()
	if len(v.Jobs) != pageListLimit {
		t.Errorf("page lists %d letters, want %d", len(v.Jobs), pageListLimit)
	}
	for i := 1; i < len(v.Jobs); i++ {
		if v.Jobs[i].ExpiresAt.Before(v.Jobs[i-1].ExpiresAt) {
			t.Fatalf("letter %d is due before letter %d", i, i-1)
		}
	}
	// Coalesced: storing a letter takes far less than the refresh delay,
	// so far fewer refreshes than letters came (one per letter before).
	if got := r.pages.count() - before; got > n/2 {
		t.Errorf("%d page refreshes for %d letters", got, n)
	}
	r.flow.wait()
	r.storeJob(t, r.signer, 1)
	r.flow.refresh.mu.Lock()
	defer r.flow.refresh.mu.Unlock()
	if r.flow.refresh.due {
		t.Error("a page refresh was scheduled after the flow stopped")
	}
}

// A change asked for while a refresh runs gets a refresh of its own: the
// one running may have read the list before the change.
func TestListRefreshAskedWhileRunning(t *testing.T) {
	var r listRefresh
	defer r.stop()
	runs := make(chan int, 10)
	inside, release := make(chan struct{}), make(chan struct{})
	n := 0
	refresh := func() {
		n++
		if n == 1 {
			close(inside)
			<-release
		}
		runs <- n
	}
	r.ask(refresh)
	<-inside
	r.ask(refresh) // while the first runs
	r.ask(refresh) // coalesced with the one before
	close(release)
	for want := 1; want <= 2; want++ {
		select {
		case got := <-runs:
			if got != want {
				t.Fatalf("run %d, want %d", got, want)
			}
		case <-time.After(time.Minute):
			t.Fatalf("refresh %d never ran", want)
		}
	}
	// Run 2 has sent its number; it settles a moment after.
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.due || r.running || r.again {
			return fmt.Errorf("left due %v running %v again %v", r.due, r.running, r.again)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 0 {
		t.Fatalf("%d runs more than asked", len(runs))
	}
}
