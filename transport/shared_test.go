package transport

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
)

// TestSharedSubscriptions measures, on each broker, what two dispatchers
// with one SharedGroup get of one terminal's results: with shared
// subscriptions each result reaches one of them and together they take
// all; docs/BROKERS.md records the answers. A broker without them for
// MQTT 3.1.1 clients gives a shared subscriber nothing, which is why the
// gateway subscribes shared only when told to.
func TestSharedSubscriptions(t *testing.T) {
	shares := map[string]bool{"mosquitto": true, "nats": false, "rabbitmq": false}
	testenv.ForEachBroker(t, func(t *testing.T, b testenv.Broker) {
		r := newRigWith(t, b, Connection{}, func(c *DispatcherConfig) { c.SharedGroup = "teken-gateway" })
		var other atomic.Int32
		d, err := OpenDispatcher(DispatcherConfig{
			Connection: Connection{Brokers: []string{b.URL}, ClientID: "central-b-" + newUUID(t)[:8], Logger: testLogger(t), MaxReconnectInterval: time.Second},
			Root:       r.root, Signer: r.signer, SharedGroup: "teken-gateway",
			OnResult: func(context.Context, *api.Result) error {
				other.Add(1)
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close(context.Background()) })
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := d.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		const n = 200
		for range n {
			res := &api.Result{V: api.Version, JobID: newUUID(t), Terminal: testTerminal, Outcome: api.OutcomeRejected,
				Reason: api.ReasonRejectedBySigner, CompletedAt: time.Now().UTC()}
			r.term.mu.Lock()
			r.term.outbox[res.JobID] = res
			r.term.mu.Unlock()
			if err := publishResult(ctx, r.t, res); err != nil {
				t.Fatal(err)
			}
		}
		got := func() (int, int) { return int(r.nResult.Load()), int(other.Load()) }
		if !shares[b.Name] {
			// Nothing comes: wait as long as a shared one takes all.
			_ = testenv.WaitFor(ctx, 15*time.Second, func() error {
				if a, o := got(); a+o > 0 {
					return nil
				}
				return fmt.Errorf("none yet")
			})
			a, o := got()
			t.Logf("%s: shared subscribers got %d and %d of %d results", b.Name, a, o, n)
			if a+o != 0 {
				t.Errorf("%s gave shared subscribers %d results: docs/BROKERS.md says it has no shared subscriptions", b.Name, a+o)
			}
			return
		}
		if err := testenv.WaitFor(ctx, time.Minute, func() error {
			r.term.mu.Lock()
			left := len(r.term.outbox)
			r.term.mu.Unlock()
			if left > 0 {
				a, o := got()
				return fmt.Errorf("%d results unacknowledged (dispatchers took %d and %d)", left, a, o)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		a, o := got()
		t.Logf("%s: shared subscribers got %d and %d of %d results", b.Name, a, o, n)
		if a+o != n || a == 0 || o == 0 {
			t.Fatalf("%d and %d of %d results: want each result to one, both taking some", a, o, n)
		}
	})
}
