package transport

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/tekenid/teken/api"
)

// Fleet holds the latest retained Status of every terminal under a topic
// root, kept current by a Monitor: it never takes results or publishes
// anything, and leaves no session on the broker.
type Fleet struct {
	m    *Monitor
	root string

	mu      sync.Mutex
	status  map[string]api.Status
	last    time.Time // when the last status message (or the SUBACK) came
	invalid int
}

// OpenFleet connects and subscribes to every terminal's status topic under
// root (api.DefaultRoot when empty), and to the status topic of each of
// terminals by name: a broker that gives no retained message to a wildcard
// subscription (RabbitMQ 3.10) gives it to an exact one, and otherwise
// shows a terminal only when it publishes its status again (every
// heartbeat, see tekend's status.heartbeat). It returns once the
// subscriptions are granted; the retained messages follow (see Settle).
func OpenFleet(ctx context.Context, conn Connection, root string, terminals ...string) (*Fleet, error) {
	if root == "" {
		root = api.DefaultRoot
	}
	if err := api.ValidRoot(root); err != nil {
		return nil, fmt.Errorf("open fleet: %w", err)
	}
	filters := []string{api.AllTerminals(root, api.KindStatus)}
	for _, t := range terminals {
		if err := api.ValidTerminalID(t); err != nil {
			return nil, fmt.Errorf("open fleet: %w", err)
		}
		filters = append(filters, api.Topic(root, t, api.KindStatus))
	}
	f := &Fleet{root: root, status: map[string]api.Status{}}
	var err error
	f.m, err = OpenMonitor(ctx, MonitorConfig{
		Connection: conn,
		Filters:    filters,
		Handle:     f.handle,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	f.mu.Lock()
	f.last = time.Now()
	f.mu.Unlock()
	return f, nil
}

func (f *Fleet) handle(m Message) {
	payload := m.Payload
	terminal, kind, err := api.ParseTopic(f.root, m.Topic)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = time.Now()
	if err != nil || kind != api.KindStatus {
		return
	}
	if len(payload) == 0 {
		delete(f.status, terminal) // a cleared retained status
		return
	}
	s, err := api.DecodeStatus(payload)
	if err != nil || s.Terminal != terminal {
		f.invalid++
		return
	}
	f.status[terminal] = *s
}

// Settle waits until no status message came for quiet (the retained ones
// arrive in a burst after subscribing), or ctx ends.
func (f *Fleet) Settle(ctx context.Context, quiet time.Duration) error {
	tick := time.NewTicker(quiet / 4)
	defer tick.Stop()
	for {
		f.mu.Lock()
		idle := time.Since(f.last)
		f.mu.Unlock()
		if idle >= quiet {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Listen keeps taking status messages for d, or until ctx ends: enough to
// hear every terminal's heartbeat where the broker gives no retained ones.
func (f *Fleet) Listen(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Snapshot returns the terminals' status, sorted by terminal id, and how
// many invalid status messages were dropped.
func (f *Fleet) Snapshot() ([]api.Status, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]api.Status, 0, len(f.status))
	for _, s := range f.status {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Terminal < out[j].Terminal })
	return out, f.invalid
}

// Close disconnects.
func (f *Fleet) Close(ctx context.Context) error { return f.m.Close(ctx) }
