package transport

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
)

// Results drained from a terminal of edition 4 are acknowledged by
// ResultAcks, many per message, never one ResultAck each; every result
// ends acknowledged.
func TestResultsAcknowledgedInBatches(t *testing.T) {
	t.Parallel()
	m := testenv.StartMosquitto(t)
	r := newRig(t, m, Connection{})
	ctx := ctxT(t)
	waitFor(t, time.Minute, func() error {
		for {
			select {
			case s := <-r.status:
				if s.Edition >= 4 {
					return nil
				}
			default:
				return fmt.Errorf("no status of edition 4 or later seen by the central side")
			}
		}
	})
	const n = 500
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		res := &api.Result{JobID: newUUID(t), Outcome: api.OutcomeRejected, Reason: api.ReasonRejectedBySigner, CompletedAt: time.Now().UTC()}
		r.term.mu.Lock()
		r.term.outbox[res.JobID] = res
		r.term.mu.Unlock()
		wg.Go(func() {
			if err := publishResult(ctx, r.t, res); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, func() error {
		r.term.mu.Lock()
		defer r.term.mu.Unlock()
		if len(r.term.outbox) > 0 {
			return fmt.Errorf("%d of %d results unacknowledged", len(r.term.outbox), n)
		}
		return nil
	})
	r.term.mu.Lock()
	batches, singles := r.term.batches, r.term.singles
	r.term.mu.Unlock()
	if singles > 0 {
		t.Errorf("%d single ResultAcks to a terminal of edition 4", singles)
	}
	if batches >= n {
		t.Errorf("%d ResultAcks messages for %d results: nothing batched", batches, n)
	}
	t.Logf("%d results acknowledged by %d ResultAcks messages", n, batches)
}

// The acker sends one ResultAck per result to a terminal whose Status it
// has not seen or that names an edition before 4, and splits a batch at
// MaxResultAcks.
func TestAckerFlushByEdition(t *testing.T) {
	signer, _ := newPKI(t)
	rec := &ackRecorder{Signer: signer}
	d := &Dispatcher{cfg: DispatcherConfig{Signer: rec, AckTTL: time.Hour, Root: api.DefaultRoot}}
	s, err := newSession(Connection{Brokers: []string{"tcp://127.0.0.1:1"}, ClientID: "acker-test"}, sessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background()) // never connected: publishLater drops
	t.Cleanup(s.cancel)
	d.s = s
	d.acks = newAcker(d)
	d.acks.edition("baru", 4)
	d.acks.edition("lama", 3)
	for i := range api.MaxResultAcks + 5 {
		d.acks.pending["baru"] = append(d.acks.pending["baru"], fmt.Sprintf("%08d-0000-4000-8000-000000000000", i))
	}
	d.acks.pending["lama"] = []string{newUUID(t), newUUID(t)}
	d.acks.pending["asing"] = []string{newUUID(t)}
	d.acks.flush()
	if rec.singles != 3 {
		t.Errorf("%d single ResultAcks, want 3 (two to edition 3, one to a terminal never seen)", rec.singles)
	}
	if len(rec.batches) != 2 || rec.batches[0] != api.MaxResultAcks || rec.batches[1] != 5 {
		t.Errorf("ResultAcks of %v ids, want [%d 5]", rec.batches, api.MaxResultAcks)
	}
}

// ackRecorder counts what the acker signs.
type ackRecorder struct {
	*api.Signer
	mu      sync.Mutex
	singles int
	batches []int
}

func (r *ackRecorder) SignResultAck(a *api.ResultAck) ([]byte, error) {
	r.mu.Lock()
	r.singles++
	r.mu.Unlock()
	return r.Signer.SignResultAck(a)
}

func (r *ackRecorder) SignResultAcks(a *api.ResultAcks) ([]byte, error) {
	r.mu.Lock()
	r.batches = append(r.batches, len(a.JobIDs))
	r.mu.Unlock()
	return r.Signer.SignResultAcks(a)
}
