package transport

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
)

// After a reconnect with its session kept, the terminal's Sync waits for
// the backlog the broker redelivers, so the central side re-sends nothing
// the broker still had: with 200 jobs queued while the terminal was away,
// the re-sends are at most the jobs the broker dropped (those the terminal
// had not received when the first re-send went out), on every broker none.
func TestReconnectSyncAfterBacklog(t *testing.T) {
	t.Parallel()
	testenv.ForEachSharedBroker(t, testReconnectSyncAfterBacklog)
}

func testReconnectSyncAfterBacklog(t *testing.T, b testenv.Broker) {
	// No grace: a Sync that missed a job would re-send it.
	r := newRigWith(t, b, Connection{}, func(c *DispatcherConfig) { c.ResendGrace = time.Nanosecond })
	ctx := ctxT(t)
	closeCtx(t, r.t.Close) // the session and its queue stay with the broker
	// The offline status comes after the terminal's last Sync: once it is
	// in and answered, no Sync from before the absence is left.
	waitStatusOffline(t, r)
	waitFor(t, time.Minute, func() error {
		if r.d.syncs.busy() {
			return errors.New("a sync is being answered")
		}
		return nil
	})
	const n = 200
	for range n {
		if err := r.d.Publish(ctx, newJob(t, newUUID(t))); err != nil {
			t.Fatal(err)
		}
	}
	drainSyncs(r)
	back := time.Now()
	r.openTerminal(t, Connection{})
	s := awaitSync(t, r, func(s *api.Sync) bool { return s.Trigger == api.SyncOnConnect })
	if s.SessionPresent == nil || !*s.SessionPresent {
		t.Errorf("connect sync %+v: want session_present true", s)
	}
	waitFor(t, 3*time.Minute, func() error {
		if got, _ := r.term.storedCount(); got != n {
			return fmt.Errorf("%d of %d jobs stored", got, n)
		}
		return nil
	})
	took := time.Since(back)
	// Whatever Syncs came meanwhile have been answered.
	waitFor(t, time.Minute, func() error {
		if r.d.syncs.busy() {
			return errors.New("a sync is being answered")
		}
		return nil
	})
	resent, dropped := r.resent.Load(), r.dropped(n)
	// A job the broker withheld (NATS, now and then, under load) cannot be
	// in the connect Sync; every other one must.
	if len(s.JobsWaiting) < n-dropped {
		t.Errorf("connect sync lists %d of %d jobs, the broker withheld %d: it went out before the backlog was in", len(s.JobsWaiting), n, dropped)
	}
	if resent > int64(dropped) {
		t.Errorf("the central side re-sent %d jobs; the broker dropped %d", resent, dropped)
	}
	r.term.mu.Lock()
	dups := r.term.dups
	r.term.mu.Unlock()
	// Informative only, no assertion on time.
	t.Logf("%d queued while away: connect sync listed %d, re-sent %d, dropped %d, duplicates %d, all stored %v after the reconnect",
		n, len(s.JobsWaiting), resent, dropped, dups, took.Round(time.Millisecond))
}

// A SyncRequest gets a Sync naming it at once, every unacknowledged
// result again and the receipts of the jobs held, marked resent; the same
// request again gets a Sync but no second round.
func TestSyncRequest(t *testing.T) {
	t.Parallel()
	testenv.ForEachSharedBroker(t, testSyncRequest)
}

func testSyncRequest(t *testing.T, b testenv.Broker) {
	r := newRig(t, b, Connection{})
	ctx := ctxT(t)
	held := newUUID(t)
	if err := r.d.Publish(ctx, newJob(t, held)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, func() error {
		if got, _ := r.term.storedCount(); got != 1 {
			return errors.New("job not stored")
		}
		return nil
	})
	drainReceipts(r)
	drainSyncs(r)
	id, err := r.d.RequestSync(ctx, testTerminal)
	if err != nil {
		t.Fatal(err)
	}
	s := awaitSync(t, r, func(s *api.Sync) bool { return s.RequestID == id })
	if s.Trigger != api.SyncOnRequest || len(s.JobsWaiting) != 1 {
		t.Errorf("answer %+v", s)
	}
	for {
		rc := nextReceipt(t, r)
		if rc.Resent && rc.JobID == held && rc.For == api.ForJob {
			break
		}
	}
	r.term.mu.Lock()
	resends := r.term.resends
	r.term.mu.Unlock()
	if resends != 1 {
		t.Errorf("handler Resend ran %d times", resends)
	}
}

// A Cancel for a job the terminal does not hold is answered with a receipt
// for the cancel, which does not touch the central side's pending jobs.
func TestControlReceiptIsNotAJobReceipt(t *testing.T) {
	t.Parallel()
	testenv.ForEachSharedBroker(t, testControlReceiptIsNotAJobReceipt)
}

func testControlReceiptIsNotAJobReceipt(t *testing.T, b testenv.Broker) {
	r := newRig(t, b, Connection{})
	ctx := ctxT(t)
	id := newUUID(t)
	if err := r.d.Cancel(ctx, testTerminal, id, "ditarik"); err != nil {
		t.Fatal(err)
	}
	for {
		rc := nextReceipt(t, r)
		if rc.JobID != id {
			continue
		}
		if rc.For != api.ForCancel || rc.Status != api.ReceiptRefused || rc.Reason != api.ReasonUnknownJob {
			t.Fatalf("receipt %+v", rc)
		}
		break
	}
}

// A job over the broker's size limit is refused before it is published.
func TestPublishRefusesOversizedJob(t *testing.T) {
	t.Parallel()
	r := newRig(t, testenv.StartMosquitto(t), Connection{})
	r.d.cfg.MaxMessageBytes = 2048
	j := newJob(t, newUUID(t))
	j.Documents[0] = api.NewDocument("d1", "besar.pdf", "application/pdf", make([]byte, 4096))
	err := r.d.Publish(ctxT(t), j)
	var tl *TooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrTooLarge) || tl.Limit != 2048 || tl.Size <= 2048 {
		t.Fatalf("publish: %v", err)
	}
	if pending, _ := r.d.cfg.Jobs.Pending(ctxT(t), testTerminal); len(pending) != 0 {
		t.Errorf("the refused job is pending: %d", len(pending))
	}
}

// Without a limit configured the dispatcher holds jobs to the broker
// message size PROTOCOL.md asks for; a negative limit turns the check off.
func TestMaxMessageBytesDefault(t *testing.T) {
	for _, c := range []struct{ set, want int }{{0, api.MaxResultBytes}, {-1, 0}, {4096, 4096}} {
		d := &Dispatcher{cfg: DispatcherConfig{MaxMessageBytes: c.set}}
		if got := d.maxMessageBytes(); got != c.want {
			t.Errorf("MaxMessageBytes %d: limit %d, want %d", c.set, got, c.want)
		}
	}
}

func waitStatusOffline(t *testing.T, r *rig) {
	t.Helper()
	ctx := ctxT(t)
	for {
		select {
		case s := <-r.status:
			if s.State == api.StateOffline {
				return
			}
		case <-ctx.Done():
			t.Fatal("no offline status")
		}
	}
}

func drainSyncs(r *rig) {
	for {
		select {
		case <-r.syncs:
		default:
			return
		}
	}
}

func drainReceipts(r *rig) {
	for {
		select {
		case <-r.recv:
		default:
			return
		}
	}
}

func awaitSync(t *testing.T, r *rig, match func(*api.Sync) bool) *api.Sync {
	t.Helper()
	ctx := ctxT(t)
	for {
		select {
		case s := <-r.syncs:
			if match(s) {
				return s
			}
		case <-ctx.Done():
			t.Fatal("no matching sync")
		}
	}
}
