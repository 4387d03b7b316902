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
	due      bool // a run is scheduled and has not begun
	running  bool
	again    bool // asked while running: run once more after
	lastCost time.Duration
	stopped  bool
	timer    *time.Timer
}

const listRefreshDelay = 100 * time.Millisecond

// ask has refresh run once soon, after this call, unless a run that has
// not begun is already due.
func (r *listRefresh) ask(refresh func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.stopped || r.due:
	case r.running:
		r.again = true // the run under way may have read the list already
	default:
		r.scheduleLocked(refresh)
	}
}

func (r *listRefresh) scheduleLocked(refresh func()) {
	r.due = true
	r.timer = time.AfterFunc(max(listRefreshDelay, 3*r.lastCost), func() {
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return
		}
		r.due, r.running = false, true
		r.mu.Unlock()
		start := time.Now()
		refresh()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.running, r.lastCost = false, time.Since(start)
		if r.again && !r.stopped {
			r.again = false
			r.scheduleLocked(refresh)
		}
	})
}

// stop cancels a refresh not yet begun and refuses new ones: the page
// is going away with the daemon.
func (r *listRefresh) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.timer != nil {
		r.timer.Stop()
	}
	r.due, r.again = false, false
}
