package transport

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"

	"github.com/tekenid/teken/api"
)

func TestHappyPath(t *testing.T) {
	t.Parallel()
	testenv.ForEachSharedBroker(t, testHappyPath)
}

func testHappyPath(t *testing.T, b testenv.Broker) {
	r := newRig(t, b, Connection{})
	ctx := ctxT(t)

	// The retained online status reaches the central side.
	waitStatus(t, r, api.StateOnline)

	// 50 jobs in a row are stored, handled side by side, and their
	// receipts come back in the order they were published.
	var ids []string
	for range 50 {
		j := newJob(t, newUUID(t))
		ids = append(ids, j.JobID)
		if err := r.d.Publish(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		rc := nextReceipt(t, r)
		if rc.JobID != id || rc.Status != api.ReceiptStored {
			t.Fatalf("receipt %+v, want stored %s", rc, id)
		}
	}
	r.term.mu.Lock()
	order := slices.Clone(r.term.order)
	r.term.mu.Unlock()
	slices.Sort(order)
	if want := slices.Sorted(slices.Values(ids)); !slices.Equal(order, want) {
		t.Fatalf("stored %d jobs, want the %d published", len(order), len(ids))
	}

	// A result reaches the central side; its ResultAck reaches the terminal.
	if err := r.term.finish(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if res := <-r.results; res.JobID != ids[0] || res.Outcome != api.OutcomeRejected {
		t.Fatalf("result %+v", res)
	}
	waitFor(t, time.Minute, func() error {
		if !r.term.isDelivered(ids[0]) {
			return errors.New("result not acknowledged")
		}
		return nil
	})
	if n, _ := r.d.cfg.Jobs.Pending(ctx, testTerminal); len(n) != 49 {
		t.Errorf("dispatcher holds %d pending jobs, want 49", len(n))
	}

	// A Cancel reaches the terminal.
	if err := r.d.Cancel(ctx, testTerminal, ids[1], "ditarik"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, func() error {
		r.term.mu.Lock()
		defer r.term.mu.Unlock()
		if !r.term.cancelled[ids[1]] {
			return errors.New("cancel not received")
		}
		return nil
	})

	// Close says offline, retained.
	closeCtx(t, r.t.Close)
	waitStatus(t, r, api.StateOffline)
}

// nextReceipt returns the next receipt that is not a duplicate. A job
// published just before the dispatcher read a terminal's Sync is published
// again, and the terminal reports the second copy as a duplicate.
func nextReceipt(t *testing.T, r *rig) *api.Receipt {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case rc := <-r.recv:
			if rc.Status != api.ReceiptDuplicate {
				return rc
			}
		case <-timeout:
			t.Fatal("no receipt")
		}
	}
}

func waitStatus(t *testing.T, r *rig, want api.State) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case s := <-r.status:
			if s.State == want && s.Terminal == testTerminal {
				return
			}
		case <-timeout:
			t.Fatalf("no %s status", want)
		}
	}
}

func TestDuplicateJobStoredOnce(t *testing.T) {
	t.Parallel()
	testenv.ForEachSharedBroker(t, testDuplicateJobStoredOnce)
}

func testDuplicateJobStoredOnce(t *testing.T, b testenv.Broker) {
	r := newRig(t, b, Connection{})
	ctx := ctxT(t)
	j := newJob(t, newUUID(t))
	for range 2 {
		if err := r.d.Publish(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	if rc := nextReceipt(t, r); rc.Status != api.ReceiptStored {
		t.Fatalf("first receipt %+v, want stored", rc)
	}
	waitFor(t, time.Minute, func() error {
		r.term.mu.Lock()
		defer r.term.mu.Unlock()
		if r.term.dups == 0 {
			return errors.New("second copy not seen")
		}
		return nil
	})
	if n, times := r.term.storedCount(); n != 1 || times != 1 {
		t.Fatalf("stored %d jobs, one of them %d times", n, times)
	}
}

func TestRefusedJobIsAckedAndForgotten(t *testing.T) {
	t.Parallel()
	testenv.ForEachSharedBroker(t, testRefusedJobIsAckedAndForgotten)
}

func testRefusedJobIsAckedAndForgotten(t *testing.T, b testenv.Broker) {
	r := newRig(t, b, Connection{})
	ctx := ctxT(t)
	j := newJob(t, newUUID(t))
	j.Terminal = "another-terminal" // the terminal refuses what is not addressed to it
	env, err := r.signer.SignJob(j)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.d.s.publish(ctx, api.Topic(r.root, testTerminal, api.KindJobs), env, false); err != nil {
		t.Fatal(err)
	}
	if rc := <-r.recv; rc.Status != api.ReceiptRefused || rc.Reason != api.ReasonWrongTerminal {
		t.Fatalf("receipt %+v, want refused wrong_terminal", rc)
	}
	// The refusal was acknowledged: a new connection gets nothing again.
	closeCtx(t, r.t.Close)
	r.openTerminal(t, Connection{})
	if err := r.d.Publish(ctx, newJob(t, newUUID(t))); err != nil {
		t.Fatal(err)
	}
	if rc := nextReceipt(t, r); rc.Status != api.ReceiptStored {
		t.Fatalf("receipt %+v after reconnect, want the new job stored", rc)
	}
}

func TestHandlerErrorRetriesInOrder(t *testing.T) {
	t.Parallel()
	testenv.ForEachSharedBroker(t, testHandlerErrorRetriesInOrder)
}

func testHandlerErrorRetriesInOrder(t *testing.T, broker testenv.Broker) {
	r := newRig(t, broker, Connection{})
	ctx := ctxT(t)
	r.term.failJobs.Store(3) // the store is full for a while
	a, b := newJob(t, newUUID(t)), newJob(t, newUUID(t))
	for _, j := range []*api.Job{a, b} {
		if err := r.d.Publish(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{a.JobID, b.JobID} {
		if rc := nextReceipt(t, r); rc.JobID != want || rc.Status != api.ReceiptStored {
			t.Fatalf("receipt %+v, want stored %s", rc, want)
		}
	}
	if r.term.failJobs.Load() >= 0 {
		t.Fatal("the handler was not retried")
	}
}

func TestOfflineBacklog(t *testing.T) {
	t.Parallel()
	testenv.ForEachSharedBroker(t, testOfflineBacklog)
}

func testOfflineBacklog(t *testing.T, b testenv.Broker) {
	r := newRig(t, b, Connection{})
	ctx := ctxT(t)
	closeCtx(t, r.t.Close) // the session and its subscriptions stay with the broker
	const n = 500
	for range n {
		if err := r.d.Publish(ctx, newJob(t, newUUID(t))); err != nil {
			t.Fatal(err)
		}
	}
	r.openTerminal(t, Connection{})
	waitFor(t, 3*time.Minute, func() error {
		if got, _ := r.term.storedCount(); got != n {
			return fmt.Errorf("%d of %d jobs stored", got, n)
		}
		return nil
	})
	if _, times := r.term.storedCount(); times != 1 {
		t.Fatalf("a job was stored %d times", times)
	}
}

func TestTLSClientCertificates(t *testing.T) {
	t.Parallel()
	m := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{TLS: true})
	tc, err := TLSConfig(m.CA.CertFile, m.Client.CertFile, m.Client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, m, Connection{TLS: tc})
	ctx := ctxT(t)
	if err := r.d.Publish(ctx, newJob(t, newUUID(t))); err != nil {
		t.Fatal(err)
	}
	if rc := nextReceipt(t, r); rc.Status != api.ReceiptStored {
		t.Fatalf("receipt %+v", rc)
	}

	other := testenv.NewCA(t, "Another CA")
	foreign := other.Client(t, "intruder")
	for _, c := range []struct {
		name          string
		ca, cert, key string
	}{
		{"client certificate from another CA", m.CA.CertFile, foreign.CertFile, foreign.KeyFile},
		{"broker certificate not from the pinned CA", other.CertFile, m.Client.CertFile, m.Client.KeyFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			tc, err := TLSConfig(c.ca, c.cert, c.key)
			if err != nil {
				t.Fatal(err)
			}
			tt, err := OpenTerminal(TerminalConfig{
				Connection: Connection{Brokers: []string{m.URL}, ClientID: "intruder", TLS: tc, Logger: testLogger(t)},
				TerminalID: "intruder-01", Handler: newMemTerminal(r.v),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer closeCtx(t, tt.Close)
			waitFor(t, 10*time.Second, func() error {
				if tt.Err() == nil {
					return errors.New("no connection error yet")
				}
				return nil
			})
			if tt.Connected() {
				t.Fatal("connected with a certificate from another CA")
			}
			t.Logf("refused: %v", tt.Err())
		})
	}
}

// TestInteropOpenSSLAndMosquittoPub publishes a job signed by the shell
// example with mosquitto_pub, as a central system without Go would.
func TestInteropOpenSSLAndMosquittoPub(t *testing.T) {
	t.Parallel()
	pub := testenv.LookPath(t, "mosquitto_pub")
	testenv.LookPath(t, "openssl")
	script, err := filepath.Abs("../examples/dispatch-openssl.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := testenv.StartMosquitto(t)
	r := newRig(t, m, Connection{})
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.pem")
	if out, err := exec.Command("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	pemKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := api.ParsePrivateKeyPEM(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := api.KeySet(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	r.term.v.Keys = ks // the terminal now trusts only the shell's key

	j := newJob(t, newUUID(t))
	payload, err := api.Encode(j)
	if err != nil {
		t.Fatal(err)
	}
	payloadFile := filepath.Join(dir, "job.json")
	if err := os.WriteFile(payloadFile, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := exec.Command("sh", script, keyFile, payloadFile).Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	envFile := filepath.Join(dir, "envelope")
	if err := os.WriteFile(envFile, env, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pub, "-p", fmt.Sprint(m.Port), "-h", "127.0.0.1", "-q", "1",
		"-t", api.Topic(api.DefaultRoot, testTerminal, api.KindJobs), "-f", envFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	if rc := nextReceipt(t, r); rc.Status != api.ReceiptStored || rc.JobID != j.JobID {
		t.Fatalf("receipt %+v, want stored %s", rc, j.JobID)
	}
}
