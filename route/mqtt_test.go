package route

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/transport"
)

// signingTerminal is a terminal's store that signs each job it stores: it
// publishes a signed result whose PDF is the job's with a mark appended.
type signingTerminal struct {
	v  *api.Verifier
	tt *transport.Terminal
	wg sync.WaitGroup

	mu   sync.Mutex
	jobs []string
	err  error // a result that would not encode
}

func (s *signingTerminal) HandleJob(_ context.Context, raw []byte) (api.Receipt, error) {
	r := api.Receipt{EnvelopeSHA256: api.EnvelopeSHA256(raw), At: time.Now().UTC()}
	j, _, err := s.v.VerifyJob(raw)
	if err != nil {
		r.Status, r.Reason, r.Detail = api.ReceiptRefused, api.Reason(err), err.Error()
		return r, nil
	}
	r.JobID = j.JobID
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.jobs, j.JobID) {
		r.Status = api.ReceiptDuplicate
		return r, nil
	}
	s.jobs = append(s.jobs, j.JobID)
	r.Status = api.ReceiptStored
	s.wg.Go(func() { s.sign(j) })
	return r, nil
}

// sign publishes the job's result once the broker takes it.
func (s *signingTerminal) sign(j *api.Job) {
	raw, err := api.Encode(signedBy(j))
	if err != nil {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		return
	}
	_ = testenv.WaitFor(context.Background(), 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return s.tt.PublishResult(ctx, j.JobID, raw)
	})
}

func (s *signingTerminal) HandleControl(context.Context, []byte) (transport.ControlAnswer, error) {
	return transport.ControlAnswer{}, nil // result acks: nothing is kept to forget
}

func (s *signingTerminal) SyncState(context.Context) (api.Sync, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return api.Sync{JobsWaiting: []string{}, ResultsUndelivered: []string{}}, nil
}

func (s *signingTerminal) Connected(context.Context)                     {}
func (s *signingTerminal) Resend(context.Context) ([]api.Receipt, error) { return nil, nil }

func (s *signingTerminal) stored() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.jobs), s.err
}

// TestRouteOverMQTT carries a letter of three steps over two terminals
// through a real broker: paraf at t1, paraf at t2, ttd at t1. Terminal t2
// comes online only after its job was published to nobody, so it gets the
// job through its Sync and the ledger's JobStore.
func TestRouteOverMQTT(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	quiet := slog.New(slog.DiscardHandler)
	conn := func(id string) transport.Connection {
		return transport.Connection{Brokers: []string{broker.URL}, ClientID: id, MaxReconnectInterval: time.Second, Logger: quiet}
	}
	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := api.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := api.KeySet(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	terminal := func(id string) *signingTerminal {
		s := &signingTerminal{v: &api.Verifier{Keys: keys, Terminal: id}}
		tt, err := transport.OpenTerminal(transport.TerminalConfig{
			Connection: conn("teken-" + id), TerminalID: id, Handler: s,
			Status: func() api.Status { return api.Status{Version: "test"} },
		})
		if err != nil {
			t.Fatal(err)
		}
		s.tt = tt
		t.Cleanup(func() {
			_ = tt.Close(context.Background())
			s.wg.Wait()
		})
		if err := testenv.WaitFor(ctx, time.Minute, func() error {
			if !tt.Connected() {
				return fmt.Errorf("terminal %s is not connected", id)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t1 := terminal("t1")

	path := filepath.Join(t.TempDir(), "routes.ledger")
	r, err := Open(Config{Path: path, Signer: signer, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	d, err := transport.OpenDispatcher(transport.DispatcherConfig{
		Connection: conn("central"), Signer: signer, Jobs: r,
		OnResult: r.OnResult, OnReceipt: r.OnReceipt,
		ResendGrace: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = d.WaitConnected(wctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Resume(ctx, d); err != nil {
		t.Fatal(err)
	}

	rt := letter("nota-dinas-7", 3)
	if err := r.Start(ctx, rt); err != nil {
		t.Fatal(err)
	}
	waitStep := func(step int, state StepState) {
		t.Helper()
		if err := testenv.WaitFor(ctx, time.Minute, func() error {
			s, _ := r.Get(rt.ID)
			if s.State == RouteStopped {
				return testenv.Permanent(fmt.Errorf("route stopped: %+v", s.Steps[s.Current]))
			}
			if s.Current > step || (s.Current == step && (step == len(s.Steps) || s.Steps[step].State == state)) {
				return nil
			}
			{
				return fmt.Errorf("route at step %d, want step %d %s", s.Current, step, state)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitStep(1, StepSent) // t1 initialled; t2's job went to a topic nobody reads
	t2 := terminal("t2")
	waitStep(3, "") // the whole route
	s, _ := r.Get(rt.ID)
	if s.State != RouteDone {
		t.Fatalf("route %s", s.State)
	}
	want := bytes.Clone(rt.PDF)
	for i := range 3 {
		want = append(want, []byte("|sig "+cert(i)[56:]+"\n")...)
	}
	if !bytes.Equal(s.PDF, want) {
		t.Fatalf("final PDF %q, want %q", s.PDF, want)
	}
	if got, err := t1.stored(); err != nil || len(got) != 2 || got[0] != s.Steps[0].JobID || got[1] != s.Steps[2].JobID {
		t.Errorf("t1 stored %v (%v)", got, err)
	}
	if got, err := t2.stored(); err != nil || len(got) != 1 || got[0] != s.Steps[1].JobID {
		t.Errorf("t2 stored %v (%v)", got, err)
	}
	if p, _ := r.Pending(ctx, "t1"); len(p) != 0 {
		t.Errorf("pending after the route: %v", p)
	}
}
