package transport

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
)

// A dispatcher that only watches results (a one-off tekenctl dispatch)
// sees the result and acknowledges nothing: the terminal keeps it, and the
// central system's own session, connecting later, still gets it.
func TestWatchingDispatcherLeavesResultsToTheCentralSession(t *testing.T) {
	t.Parallel()
	m := testenv.StartMosquitto(t)
	r := newRigWith(t, m, Connection{}, func(c *DispatcherConfig) { c.WatchResults = true })
	ctx := ctxT(t)
	j := newJob(t, newUUID(t))
	if err := r.d.Publish(ctx, j); err != nil {
		t.Fatal(err)
	}
	<-r.recv
	if err := r.term.finish(ctx, j.JobID); err != nil {
		t.Fatal(err)
	}
	if got := <-r.results; got.JobID != j.JobID {
		t.Fatalf("watcher saw result %s, want %s", got.JobID, j.JobID)
	}

	stored := make(chan *api.Result, 10)
	central, err := OpenDispatcher(DispatcherConfig{
		Connection: Connection{Brokers: []string{m.URL}, ClientID: "central-" + newUUID(t)[:8], Logger: testLogger(t), MaxReconnectInterval: time.Second},
		Root:       r.root, Signer: r.signer,
		OnResult: func(_ context.Context, res *api.Result) error {
			stored <- res
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeCtx(t, central.Close) })
	if err := central.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if r.term.isDelivered(j.JobID) {
		t.Fatal("the watching dispatcher acknowledged the result")
	}
	if _, err := central.RequestSync(ctx, testTerminal); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-stored:
		if got.JobID != j.JobID {
			t.Fatalf("central side got result %s, want %s", got.JobID, j.JobID)
		}
	case <-ctx.Done():
		t.Fatal("the central session never got the result the watcher saw")
	}
	waitFor(t, time.Minute, func() error {
		if !r.term.isDelivered(j.JobID) {
			return errors.New("the central session's ResultAck has not reached the terminal")
		}
		return nil
	})
}
