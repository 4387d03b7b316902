package device

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// EventKind says whether a token arrived or left.
type EventKind int

// Event kinds.
const (
	// Arrived means a token is now in the reader.
	Arrived EventKind = iota + 1
	// Left means the token is no longer in the reader.
	Left
)

// String names the kind for logs.
func (k EventKind) String() string {
	switch k {
	case Arrived:
		return "arrived"
	case Left:
		return "left"
	}
	return "unknown"
}

// Event is a change of presence in one reader.
type Event struct {
	// Kind is Arrived or Left.
	Kind EventKind
	// Reader is the reader's name.
	Reader string
	// At is when the watcher saw the change.
	At time.Time
}

// watcher follows every reader with SCardGetStatusChange and sends presence
// events. It owns one PC/SC context at a time; stop cancels the blocked wait.
type watcher struct {
	log    *slog.Logger
	events chan Event
	quit   chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	cur     *scardContext // the context of the wait in progress, for cancel
	stopped bool

	present map[string]bool
}

// Backoff while pcscd is unreachable: from reconnectMin up to reconnectMax.
const (
	reconnectMin = 50 * time.Millisecond
	reconnectMax = time.Second
)

func startWatcher(log *slog.Logger) *watcher {
	w := &watcher{
		log:     log,
		events:  make(chan Event, 64),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		present: map[string]bool{},
	}
	go w.run()
	return w
}

// stop ends the watcher and waits for it. SCardCancel only interrupts a wait
// already in progress, so it is repeated until the watcher is gone, in case
// it was called just before the watcher entered the next wait.
func (w *watcher) stop(ctx context.Context) error {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		close(w.quit)
	}
	w.mu.Unlock()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		w.mu.Lock()
		if w.cur != nil {
			_ = w.cur.cancel()
		}
		w.mu.Unlock()
		select {
		case <-w.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (w *watcher) run() {
	defer close(w.done)
	defer close(w.events)
	backoff := reconnectMin
	for {
		c, err := establish()
		if err == nil {
			w.mu.Lock()
			if w.stopped {
				w.mu.Unlock()
				_ = c.release()
				return
			}
			w.cur = c
			w.mu.Unlock()

			err = w.watch(c)

			w.mu.Lock()
			w.cur = nil
			w.mu.Unlock()
			_ = c.release()
			if code, ok := pcscCode(err); ok && code == codeCancelled || w.quitting() {
				return
			}
			backoff = reconnectMin
			w.log.Warn("presence watch lost pcscd; reconnecting", "err", err)
		}
		// pcscd is gone: nothing is known to be present any more.
		if !w.leaveAll() {
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-w.quit:
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, reconnectMax)
	}
}

func (w *watcher) quitting() bool {
	select {
	case <-w.quit:
		return true
	default:
		return false
	}
}

// watch waits for changes on every reader and on the PnP pseudo-reader,
// until an error (pcscd gone) or a cancel. Between changes it is blocked
// inside pcscd's socket, which is what keeps it idle.
func (w *watcher) watch(c *scardContext) error {
	states, err := w.readerStates(c, nil)
	if err != nil {
		return err
	}
	for {
		if err := c.getStatusChange(timeoutInfinite, states); err != nil {
			if code, ok := pcscCode(err); ok && code == codeTimeout {
				continue
			}
			return err
		}
		now := time.Now()
		readersChanged := false
		for i := range states {
			st := &states[i]
			if st.name == pnpReader {
				if st.event&stateChanged != 0 {
					readersChanged = true
				}
			} else if !w.note(st.name, st.event&statePresent != 0 && st.event&(stateUnknown|stateUnavailable) == 0, now) {
				return errors.New("presence watcher stopped")
			}
			st.current = st.event &^ stateChanged
		}
		if readersChanged {
			if states, err = w.readerStates(c, states); err != nil {
				return err
			}
		}
	}
}

// readerStates lists the readers and carries over the known state of those
// still there; a reader that went away reports its token Left.
func (w *watcher) readerStates(c *scardContext, old []readerState) ([]readerState, error) {
	names, err := c.listReaders()
	if err != nil {
		return nil, err
	}
	known := map[string]uint32{}
	for _, s := range old {
		known[s.name] = s.current
	}
	states := make([]readerState, 0, len(names)+1)
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
		states = append(states, readerState{name: n, current: known[n]})
	}
	now := time.Now()
	for r := range w.present {
		if !seen[r] && !w.note(r, false, now) {
			return nil, errors.New("presence watcher stopped")
		}
	}
	// The PnP entry keeps its last event state, whose high 16 bits carry
	// the reader count pcscd compares against (pcsc-lite winscard_clnt.c).
	pnp := readerState{name: pnpReader}
	for _, s := range old {
		if s.name == pnpReader {
			pnp.current = s.current
		}
	}
	return append(states, pnp), nil
}

// note records whether reader holds a token and sends an event on change.
// It reports false when the watcher is stopping.
func (w *watcher) note(reader string, present bool, at time.Time) bool {
	if w.present[reader] == present {
		return true
	}
	kind := Left
	if present {
		kind = Arrived
		w.present[reader] = true
	} else {
		delete(w.present, reader)
	}
	w.log.Debug("token presence", "reader", reader, "event", kind.String())
	select {
	case w.events <- Event{Kind: kind, Reader: reader, At: at}:
		return true
	case <-w.quit:
		return false
	}
}

// leaveAll reports every present token Left.
func (w *watcher) leaveAll() bool {
	now := time.Now()
	for r := range w.present {
		if !w.note(r, false, now) {
			return false
		}
	}
	return true
}
