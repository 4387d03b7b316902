package daemon

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/queue"
	"github.com/tekenid/teken/signature/cms"
)

// The official's flow with its parts as fakes — a token that is a key in
// memory, a page that records what it is shown — and a real store on a
// temporary file: no pcscd, no broker.
func TestFlowWithFakeToken(t *testing.T) {
	for _, c := range []struct {
		name   string
		policy device.PINPolicy
		docs   int
		act    func(t *testing.T, r *flowRig, jobID string) error
		check  func(t *testing.T, r *flowRig, jobID string, err error)
	}{
		{"the right PIN signs", device.PINPolicyOnce, 1,
			func(t *testing.T, r *flowRig, id string) error {
				r.read(t, id)
				return r.flow.Sign(r.ctx, []string{id}, []byte("123456"), false)
			},
			func(t *testing.T, r *flowRig, id string, err error) {
				if err != nil {
					t.Fatal(err)
				}
				res := r.onlyResult(t)
				if res.Outcome != api.OutcomeSigned || res.JobID != id || res.KID != r.kid || !bytes.Equal(res.SignerCert, r.card.cert.Raw) {
					t.Fatalf("result %+v", res)
				}
				if _, err := cms.Verify(res.Documents[0].Signature, r.content[0], cms.VerifyOptions{}); err != nil {
					t.Errorf("signature does not verify: %v", err)
				}
				if v := r.pages.last(); v.State != kiosk.StateDone || v.Result.Signed != 1 {
					t.Errorf("page %+v", v)
				}
				if r.card.verifies != 1 {
					t.Errorf("PIN verified %d times, want 1", r.card.verifies)
				}
			}},
		{"PIN policy always verifies before every signature", device.PINPolicyAlways, 3,
			func(t *testing.T, r *flowRig, id string) error {
				r.read(t, id)
				return r.flow.Sign(r.ctx, []string{id}, []byte("123456"), false)
			},
			func(t *testing.T, r *flowRig, _ string, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if res := r.onlyResult(t); len(res.Documents) != 3 {
					t.Fatalf("%d documents signed", len(res.Documents))
				}
				if r.card.verifies != 3 {
					t.Errorf("PIN verified %d times, want 3", r.card.verifies)
				}
			}},
		{"a wrong PIN is never retried", device.PINPolicyOnce, 1,
			func(t *testing.T, r *flowRig, id string) error {
				r.read(t, id)
				return r.flow.Sign(r.ctx, []string{id}, []byte("000000"), false)
			},
			func(t *testing.T, r *flowRig, id string, err error) {
				var ue *kiosk.UserError
				if !errors.As(err, &ue) || ue.Message.Code != kiosk.CodeWrongPIN {
					t.Fatalf("err %v, want wrong PIN", err)
				}
				if r.card.verifies != 1 || r.card.tries != 2 {
					t.Errorf("verifies %d, tries %d: want one try spent", r.card.verifies, r.card.tries)
				}
				if v := r.pages.last(); v.TriesLeft == nil || *v.TriesLeft != 2 || len(v.Jobs) != 1 {
					t.Errorf("page %+v", v)
				}
				if j, _ := r.store.Get(r.ctx, id); j.State != queue.Ready {
					t.Errorf("job %s after a wrong PIN", j.State)
				}
				if n := r.results(t); len(n) != 0 {
					t.Errorf("%d results after a wrong PIN", len(n))
				}
				if !r.audited(t, eventPINWrong) {
					t.Error("no pin.wrong in the audit log")
				}
			}},
		{"rejection is a result with the official's words", device.PINPolicyOnce, 1,
			func(_ *testing.T, r *flowRig, id string) error { return r.flow.Reject(r.ctx, id, "salah alamat") },
			func(t *testing.T, r *flowRig, id string, err error) {
				if err != nil {
					t.Fatal(err)
				}
				res := r.onlyResult(t)
				if res.Outcome != api.OutcomeRejected || res.Reason != api.ReasonRejectedBySigner || res.Detail != "salah alamat" || res.KID != r.kid {
					t.Fatalf("result %+v", res)
				}
			}},
		{"another signer's letter cannot be chosen", device.PINPolicyOnce, 1,
			func(t *testing.T, r *flowRig, _ string) error {
				other := r.storeJob(t, "someone-else", 1)
				return r.flow.Sign(r.ctx, []string{other}, []byte("123456"), false)
			},
			func(t *testing.T, r *flowRig, _ string, err error) {
				var ue *kiosk.UserError
				if !errors.As(err, &ue) || ue.Message.Code != kiosk.CodeJobGone {
					t.Fatalf("err %v, want job gone", err)
				}
				if r.card.verifies != 0 {
					t.Error("the PIN was asked for a letter that is not the signer's")
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newFlowRig(t, c.policy)
			id := r.storeJob(t, r.signer, c.docs)
			r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
			if v := r.pages.last(); !v.CanSign || len(v.Jobs) != 1 {
				t.Fatalf("after the tap: %+v", v)
			}
			err := c.act(t, r, id)
			c.check(t, r, id, err)
		})
	}
}

type flowRig struct {
	ctx     context.Context
	clock   *testClock
	store   *queue.Store
	flow    *flow
	intake  *intake
	pages   *pageRecorder
	card    *fakeCard
	signer  string // SHA-256 of the card's certificate
	kid     string
	jobs    *api.Signer
	content [][]byte
}

func newFlowRig(t *testing.T, policy device.PINPolicy) *flowRig {
	t.Helper()
	r := &flowRig{ctx: context.Background(), clock: &testClock{}, pages: &pageRecorder{}, card: newFakeCard(t, policy)}
	now := r.clock.now
	sum := sha256.Sum256(r.card.cert.Raw)
	r.signer = hex.EncodeToString(sum[:])
	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	if r.jobs, err = api.NewSigner(key); err != nil {
		t.Fatal(err)
	}
	r.kid = r.jobs.KID()
	keys, err := api.KeySet(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	verifier := &api.Verifier{Keys: keys, Terminal: "kendari-setda-01", Now: now}
	m := newMetrics()
	comp := &completer{results: results{terminal: "kendari-setda-01", now: now}, metrics: m, log: log,
		resultStored: func() {}, statusChanged: func() {}}
	r.store, err = queue.Open(filepath.Join(t.TempDir(), "q.db"), queue.Options{Logger: log, TerminalID: "kendari-setda-01", ExpiryPayload: comp.expiryPayload,
		Now: now, Retention: time.Minute, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.store.Close(context.Background()) })
	comp.store = r.store
	r.flow = newFlow(flowDeps{
		store: r.store, tokens: fakeTokens{r.card}, envelopes: envelopes{verifier},
		certs: certPolicy{now: now, log: log}, seen: &certsSeen{}, complete: comp,
		signer: &docSigner{metrics: m, log: log, location: time.UTC}, metrics: m, batches: newBatches(),
		now: now, log: log, lang: "id", maxBatch: 20,
		statusChanged: func() {}, rearrive: func(string) {}, setLastError: func(string) {},
	})
	r.flow.pages = r.pages
	r.intake = &intake{store: r.store, verifier: verifier, complete: comp, metrics: m, log: log, now: now,
		terminal: "kendari-setda-01", jobsChanged: r.flow.jobsChanged, statusChanged: func() {},
		setLastError: func(string) {}, resendAll: func() {}}
	return r
}

// storeJob dispatches a job of n documents to signer through intake.
func (r *flowRig) storeJob(t *testing.T, signer string, n int) string {
	t.Helper()
	id, env := r.envelope(t, signer, n)
	rc, err := r.intake.HandleJob(r.ctx, env)
	if err != nil || rc.Status != api.ReceiptStored {
		t.Fatalf("intake: %+v %v", rc, err)
	}
	return id
}

// envelope signs a job of n documents to signer, valid for a day.
func (r *flowRig) envelope(t *testing.T, signer string, n int) (string, []byte) {
	t.Helper()
	now := r.clock.now().UTC().Truncate(time.Second)
	j := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: "kendari-setda-01", IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		Signer: api.Signatory{CertSHA256: signer}, Title: "Surat Edaran", Number: "800/1/2026", Sender: "Setda"}
	if signer != r.signer {
		j.Signer.CertSHA256 = hex.EncodeToString(make([]byte, 32))
	}
	for i := range n {
		body := []byte("isi surat nomor " + string(rune('A'+i)))
		if signer == r.signer {
			r.content = append(r.content, body)
		}
		j.Documents = append(j.Documents, api.NewDocument("surat-"+string(rune('a'+i)), "surat.txt", "text/plain", body))
	}
	env, err := r.jobs.SignJob(j)
	if err != nil {
		t.Fatal(err)
	}
	return j.JobID, env
}

// testClock is the rig's clock: now, moved on by advance.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

func (r *flowRig) results(t *testing.T) []*api.Result {
	t.Helper()
	stored, err := r.store.Undelivered(r.ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []*api.Result
	for _, s := range stored {
		res, err := api.DecodeResult(s.Payload)
		if err != nil {
			t.Fatalf("stored result does not decode: %v", err)
		}
		out = append(out, res)
	}
	return out
}

func (r *flowRig) onlyResult(t *testing.T) *api.Result {
	t.Helper()
	all := r.results(t)
	if len(all) != 1 {
		t.Fatalf("%d results, want 1", len(all))
	}
	return all[0]
}

func (r *flowRig) audited(t *testing.T, ev queue.Event) bool {
	t.Helper()
	var b bytes.Buffer
	if _, err := r.store.ExportAudit(r.ctx, &b, 0); err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b.Bytes(), []byte(`"event":"`+string(ev)+`"`))
}

type pageRecorder struct {
	mu    sync.Mutex
	views []kiosk.View
}

func (p *pageRecorder) Publish(v kiosk.View) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.views = append(p.views, v)
}

func (p *pageRecorder) last() kiosk.View {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.views) == 0 {
		return kiosk.View{}
	}
	return p.views[len(p.views)-1]
}

// fakeTokens is one token, always on its reader.
type fakeTokens struct{ c *fakeCard }

func (f fakeTokens) Info(context.Context, string) (device.Info, error) {
	return device.Info{Serial: 7, SignCert: f.c.cert, PINRetries: f.c.tries}, nil
}

func (f fakeTokens) Session(_ context.Context, _ string, fn func(card) error) error { return fn(f.c) }

// fakeCard is a PIV card in memory: PIN 123456, three tries.
type fakeCard struct {
	key      *ecdsa.PrivateKey
	cert     *x509.Certificate
	policy   device.PINPolicy
	tries    int
	verifies int
}

func newFakeCard(t *testing.T, policy device.PINPolicy) *fakeCard {
	t.Helper()
	cert, key := testCert(t)
	return &fakeCard{key: key, cert: cert, policy: policy, tries: 3}
}

func (c *fakeCard) VerifyPIN(pin []byte, _ bool) error {
	c.verifies++
	if string(pin) != "123456" {
		c.tries--
		return &device.PINError{Retries: c.tries}
	}
	c.tries = 3
	return nil
}

func (c *fakeCard) SlotPINPolicy(device.Slot) (device.PINPolicy, error) { return c.policy, nil }

func (c *fakeCard) Signer(device.Slot) (crypto.Signer, error) { return c.key, nil }
