package transport

import (
	"errors"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
)

// TestFleetOnEveryBroker: tekenctl's fleet view (OpenFleet) shows a
// terminal's retained status on every broker when it names the terminal,
// which subscribes to its status exactly. With the wildcard subscription
// alone it sees the retained status only where the broker gives retained
// messages to wildcards (retainedReachesWildcard: not RabbitMQ 3.10), and
// everywhere once the terminal publishes its status again, as tekend does
// every status.heartbeat.
func TestFleetOnEveryBroker(t *testing.T) {
	t.Parallel()
	testenv.ForEachSharedBroker(t, func(t *testing.T, b testenv.Broker) {
		r := newRig(t, b, Connection{})
		waitStatus(t, r, api.StateOnline) // retained at the broker now
		ctx := ctxT(t)
		conn := func(name string) Connection {
			return Connection{Brokers: []string{b.URL}, ClientID: name + "-" + newUUID(t)[:8], Logger: testLogger(t)}
		}
		pub, err := OpenMonitor(ctx, MonitorConfig{Connection: conn("marker"), Filters: []string{r.root + "/nothing"}, Handle: func(Message) {}})
		if err != nil {
			t.Fatal(err)
		}
		defer closeCtx(t, pub.Close)
		// A marker published on the terminal's status topic after the
		// fleet subscribed arrives after any retained message the broker
		// sends on subscribing, as in TestBrokersRetained: once it is in,
		// the retained status came or will not. It names another
		// terminal, so the fleet counts it as invalid and shows nothing
		// of it.
		settled := func(f *Fleet) []api.Status {
			t.Helper()
			_, before := f.Snapshot()
			st := api.Status{V: api.Version, Edition: api.Edition, Terminal: "marker-01", State: api.StateOnline, Since: time.Now().UTC(), Version: "test"}
			raw, err := api.Encode(&st)
			if err != nil {
				t.Fatal(err)
			}
			if err := pub.Publish(ctx, api.Topic(r.root, testTerminal, api.KindStatus), raw, false); err != nil {
				t.Fatal(err)
			}
			var got []api.Status
			waitFor(t, time.Minute, func() error {
				var invalid int
				got, invalid = f.Snapshot()
				if invalid == before {
					return errors.New("marker not in yet")
				}
				return nil
			})
			return got
		}
		shows := func(fleet []api.Status) bool {
			for _, s := range fleet {
				if s.Terminal == testTerminal && s.State == api.StateOnline {
					return true
				}
			}
			return false
		}

		exact, err := OpenFleet(ctx, conn("fleet-exact"), r.root, testTerminal)
		if err != nil {
			t.Fatal(err)
		}
		defer closeCtx(t, exact.Close)
		if fleet := settled(exact); !shows(fleet) {
			t.Errorf("fleet with the terminal named: %+v, want %s online", fleet, testTerminal)
		}

		wild, err := OpenFleet(ctx, conn("fleet-wild"), r.root)
		if err != nil {
			t.Fatal(err)
		}
		defer closeCtx(t, wild.Close)
		if got, want := shows(settled(wild)), retainedReachesWildcard[b.Name]; got != want {
			t.Errorf("fleet by wildcard shows the retained status: %v, want %v (retainedReachesWildcard)", got, want)
		}
		// The heartbeat: the same status again, which every broker
		// delivers to the wildcard subscription.
		if err := r.t.PublishStatus(ctx, api.Status{Version: "test"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, func() error {
			if fleet, _ := wild.Snapshot(); !shows(fleet) {
				return errors.New("the status published again is not in the wildcard fleet")
			}
			return nil
		})
	})
}
