package transport

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
)

// A broker without persistence (Mosquitto's default) forgets every session
// and queued job when it restarts: the terminal's connect Sync says so
// (session_present false), and the central side publishes again every job
// the terminal lacks.
func TestBrokerRestartSyncRecoversJobs(t *testing.T) {
	t.Parallel()
	m := testenv.StartMosquitto(t) // persistence off: a restart loses sessions and queues
	// The central side lost its session too: the terminal's connect Sync
	// reaches it only if it subscribed again first; the interval Syncs
	// recover the jobs all the same.
	testBrokerRestart(t, newRig(t, m, Connection{}), m.Restart)
}

// A broker with persistence (every broker of the matrix as
// docs/BROKERS.md configures it) keeps the terminal's session, and the jobs
// queued in it, across a clean restart: nothing is lost, so the central
// side re-sends no more than the broker dropped, which is none.
func TestBrokerRestartKeepsJobs(t *testing.T) {
	t.Parallel()
	testenv.ForEachBrokerWith(t, testenv.Recommended, func(t *testing.T, b testenv.Broker) {
		r := newRig(t, b, Connection{})
		restarted := testBrokerRestart(t, r, b.Restart)
		// The central side's session keeps the terminal's connect Sync
		// while it reconnects itself.
		s := awaitSync(t, r, func(s *api.Sync) bool { return s.Trigger == api.SyncOnConnect && s.At.After(restarted) })
		if s.SessionPresent == nil || !*s.SessionPresent {
			t.Errorf("connect sync after the restart %+v: want session_present true", s)
		}
		const n = 200
		if resent, dropped := r.resent.Load(), r.dropped(n); resent > int64(dropped) {
			t.Errorf("the central side re-sent %d jobs; the broker dropped %d", resent, dropped)
		}
		t.Logf("re-sent %d of %d; received %d before any re-send", r.resent.Load(), n, n-r.dropped(n))
	})
}

// testBrokerRestart has the broker restart while 200 jobs wait for a slow
// store, and checks that every job is stored once in the end. It returns
// when the restart began.
func testBrokerRestart(t *testing.T, r *rig, restart func() error) time.Time {
	ctx := ctxT(t)
	// The terminal's first Sync answered before any job goes out: a Sync
	// older than the jobs must not count as one that missed them.
	awaitSync(t, r, func(s *api.Sync) bool { return s.Trigger == api.SyncOnConnect })
	waitFor(t, time.Minute, func() error {
		if r.d.syncs.busy() {
			return errors.New("a sync is being answered")
		}
		return nil
	})
	r.term.gate = make(chan struct{}) // a slow store: jobs pile up at the broker
	const n = 200
	for range n {
		if err := r.d.Publish(ctx, newJob(t, newUUID(t))); err != nil {
			t.Fatal(err)
		}
	}
	restarted := time.Now()
	if err := restart(); err != nil {
		t.Fatal(err)
	}
	close(r.term.gate)
	waitFor(t, 3*time.Minute, func() error {
		if got, _ := r.term.storedCount(); got != n {
			return fmt.Errorf("%d of %d jobs stored\nbroker log:\n%s", got, n, r.b.Log())
		}
		return nil
	})
	if _, times := r.term.storedCount(); times != 1 {
		t.Fatalf("a job was stored %d times", times)
	}
	return restarted
}

// A ResultAck lost on its way leaves the result in the terminal's outbox;
// after the next connect (here: the broker restarts) the terminal sends it
// again, and the central side acknowledges it again without taking it a
// second time.
func TestLostResultAck(t *testing.T) {
	t.Parallel()
	testenv.ForEachBrokerWith(t, testenv.Recommended, func(t *testing.T, b testenv.Broker) {
		r := newRig(t, b, Connection{})
		ctx := ctxT(t)
		j := newJob(t, newUUID(t))
		if err := r.d.Publish(ctx, j); err != nil {
			t.Fatal(err)
		}
		<-r.recv
		r.term.dropAcks.Store(1)
		if err := r.term.finish(ctx, j.JobID); err != nil {
			t.Fatal(err)
		}
		<-r.results
		waitFor(t, time.Minute, func() error {
			if r.term.dropAcks.Load() > 0 {
				return errors.New("first api.ResultAck not yet received")
			}
			return nil
		})
		if r.term.isDelivered(j.JobID) {
			t.Fatal("result delivered although its api.ResultAck was lost")
		}
		// After a reconnect the terminal sends the result again.
		if err := b.Restart(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 3*time.Minute, func() error {
			if !r.term.isDelivered(j.JobID) {
				return errors.New("result not acknowledged after reconnect")
			}
			return nil
		})
		if n := r.nResult.Load(); n != 1 {
			t.Fatalf("central side took the result %d times, want once", n)
		}
	})
}
