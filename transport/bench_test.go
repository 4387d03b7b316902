package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"

	"github.com/tekenid/teken/api"
)

const drainSize = 10000

// BenchmarkResultDrain drains a 10,000-result outbox from the terminal
// transport to the Dispatcher through Mosquitto, each result acknowledged
// end to end (its ResultAck back at the terminal side), and in the same run
// times mosquitto_pub -q 1 -l publishing 10,000 lines of the same size as a
// baseline of the raw QoS 1 rate.
func BenchmarkResultDrain(b *testing.B) {
	m := testenv.StartMosquitto(b)
	r := newRig(b, m, Connection{})
	sample, err := api.Encode(&api.Result{V: api.Version, JobID: newUUID(b), Terminal: testTerminal, Outcome: api.OutcomeRejected, Reason: api.ReasonRejectedBySigner, CompletedAt: time.Now().UTC()})
	if err != nil {
		b.Fatal(err)
	}
	for _, workers := range []int{1, 32, 64} { // 64: the daemon outbox's publish window
		b.Run(fmt.Sprintf("api/publishers=%d", workers), func(b *testing.B) {
			for b.Loop() {
				drain(b, r, workers)
			}
			b.ReportMetric(float64(drainSize*b.N)/b.Elapsed().Seconds(), "results/s")
		})
	}
	b.Run("mosquitto_pub", func(b *testing.B) {
		pub := testenv.LookPath(b, "mosquitto_pub")
		lines := bytes.Repeat(append(sample, '\n'), drainSize)
		for b.Loop() {
			cmd := exec.Command(pub, "-h", "127.0.0.1", "-p", fmt.Sprint(m.Port), "-q", "1", "-l",
				"-t", api.Topic("bench", testTerminal, api.KindResults))
			cmd.Stdin = bytes.NewReader(lines)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("mosquitto_pub: %v\n%s", err, out)
			}
		}
		b.ReportMetric(float64(drainSize*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// drain fills the outbox and publishes it with the given number of
// publishers, then waits until every result is acknowledged.
func drain(b *testing.B, r *rig, workers int) {
	// The outbox is filled and its results encoded off the clock, as the
	// daemon encodes and stores each result when it is signed, long
	// before a drain.
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	now := time.Now().UTC()
	results := make([]*api.Result, drainSize)
	r.term.mu.Lock()
	for i := range results {
		results[i] = &api.Result{V: api.Version, JobID: newUUID(b), Outcome: api.OutcomeRejected, Reason: api.ReasonRejectedBySigner, CompletedAt: now}
		r.term.outbox[results[i].JobID] = results[i]
	}
	r.term.mu.Unlock()
	encoded := make([][]byte, len(results))
	for i, res := range results {
		var err error
		if encoded[i], err = encodeResult(r.t, res); err != nil {
			b.Fatal(err)
		}
	}
	b.StartTimer()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(results); i += workers {
				if err := r.t.PublishResult(ctx, results[i].JobID, encoded[i]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	if err := testenv.WaitFor(ctx, 5*time.Minute, func() error {
		r.term.mu.Lock()
		defer r.term.mu.Unlock()
		if n := len(r.term.outbox); n > 0 {
			return fmt.Errorf("%d results unacknowledged", n)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	// The central side's own channel would fill up over many rounds.
	for range drainSize {
		select {
		case <-r.results:
		default:
			b.Fatal(errors.New("fewer results at the central side than published"))
		}
	}
}
