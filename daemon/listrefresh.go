package daemon

import (
	"sync"
	"time"
)

// listRefresh coalesces the page refreshes that arriving and ending jobs
// ask for. A terminal back from a week offline stores thousands of the
// present official's letters within seconds; rebuilding and sending the
// whole list for each was quadratic, and the intake worker that stored a
// job waited for it before the job's receipt. A refresh now waits
// listRefreshDelay for more changes, or three times what the last one
// cost, so the page trails intake by a moment and refreshing takes at
// most a quarter of a core however fast letters come.
type listRefresh struct {
	mu       sync.Mutex
	timer    *time.Timer
	lastCost time.Duration
	stopped  bool
}

const listRefreshDelay = 100 * time.Millisecond

// ask has refresh run once soon, unless a run is already due.
func (r *listRefresh) ask(refresh func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.timer != nil {
		return
	}
	r.timer = time.AfterFunc(max(listRefreshDelay, 3*r.lastCost), func() {
		start := time.Now()
		r.mu.Lock()
		stopped := r.stopped
		r.mu.Unlock()
		if !stopped {
			refresh()
		}
		r.mu.Lock()
		r.timer, r.lastCost = nil, time.Since(start)
		r.mu.Unlock()
	})
}

// stop cancels a refresh not yet begun and refuses new ones: the page
// is going away with the daemon.
func (r *listRefresh) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.timer != nil && r.timer.Stop() {
		r.timer = nil
	}
}
