package daemon

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/internal/demo"
	"github.com/tekenid/teken/queue"
	"github.com/tekenid/teken/signature/tsa"
)

// watchedTokens is the rig's token layer, telling whether a card session
// is open and how many were opened.
type watchedTokens struct {
	tokenLayer
	open     atomic.Bool
	sessions atomic.Int32
}

func (w *watchedTokens) Session(ctx context.Context, reader string, fn func(card) error) error {
	w.sessions.Add(1)
	w.open.Store(true)
	defer w.open.Store(false)
	return w.tokenLayer.Session(ctx, reader, fn)
}

// goTSA is an RFC 3161 authority in Go on loopback. Before it answers it
// notes whether a card session was open, so a test can tell that no query
// was made while the token was held; answer decides what it says.
type goTSA struct {
	URL     string
	mu      sync.Mutex
	queries int
	held    int // queries that came while a card session was open
	// answer, when set, is called with each query before the authority
	// answers; false makes it answer 503.
	answer func(r *http.Request) bool
}

func startGoTSA(t *testing.T, tokens *watchedTokens) *goTSA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	eku, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Teken Test TSA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	a := &goTSA{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.queries++
		if tokens.open.Load() {
			a.held++
		}
		answer := a.answer
		a.mu.Unlock()
		// Read first: the server notices a client that went away (and
		// ends r.Context()) only once the body is read.
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if answer != nil && !answer(r) {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		q, err := timestamp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ts := timestamp.Timestamp{HashAlgorithm: q.HashAlgorithm, HashedMessage: q.HashedMessage, Nonce: q.Nonce,
			Time: time.Now(), Policy: asn1.ObjectIdentifier{1, 2, 3, 4, 1}, AddTSACertificate: q.Certificates}
		resp, err := ts.CreateResponseWithOpts(cert, key, q.HashAlgorithm)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/timestamp-reply")
		_, _ = w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

func (a *goTSA) counts() (queries, held int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.queries, a.held
}

// tsaRig is the flow rig with a timestamp authority configured and a
// token layer that reports its sessions.
func tsaRig(t *testing.T) (*flowRig, *watchedTokens, *goTSA) {
	t.Helper()
	r := newFlowRig(t, device.PINPolicyAlways)
	w := &watchedTokens{tokenLayer: r.flow.tokens}
	r.flow.tokens = w
	a := startGoTSA(t, w)
	client, err := tsa.New(tsa.Config{Authorities: []tsa.Authority{{URL: a.URL}}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r.flow.signer.parts = &ltvParts{level: api.LevelBT, tsa: client}
	return r, w, a
}

// storePAdES dispatches a job of n letters to be signed as PDFs.
func (r *flowRig) storePAdES(t *testing.T, n int) string {
	t.Helper()
	now := r.clock.now().UTC().Truncate(time.Second)
	j := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: "kendari-setda-01", IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		Signer: api.Signatory{CertSHA256: r.signer}, Title: "Surat Keputusan", Number: "800/2/2026", Sender: "Setda"}
	for i := range n {
		pdf := demo.LetterPDF("Sekretariat Daerah", "800/2/2026", "Surat Keputusan "+string(rune('A'+i)), "Isi surat.")
		doc := api.NewDocument("sk-"+string(rune('a'+i)), "sk.pdf", "application/pdf", pdf)
		doc.Format = api.FormatPAdES
		j.Documents = append(j.Documents, doc)
	}
	env, err := r.jobs.SignJob(j)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.intake.HandleJob(r.ctx, env)
	if err != nil || rc.Status != api.ReceiptStored {
		t.Fatalf("intake: %+v %v", rc, err)
	}
	return j.JobID
}

// hasSignatureTimestamp reports whether a signed PDF's CMS carries the
// signature-time-stamp attribute: its OID, hex-encoded as in /Contents.
func hasSignatureTimestamp(pdf []byte) bool {
	oid, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14})
	return strings.Contains(string(pdf), hex.EncodeToString(oid))
}

// The batch signs every document in one card session and asks the
// authority only once the session is closed; the PDFs come out B-T, and
// a job with nothing to fetch is completed first.
func TestTimestampsAfterTheCardSession(t *testing.T) {
	r, w, a := tsaRig(t)
	pdfs := r.storePAdES(t, 2)
	plain := r.storeJob(t, r.signer, 1)
	r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	r.read(t, pdfs, plain)
	if err := r.flow.Sign(r.ctx, []string{pdfs, plain}, []byte("123456"), false); err != nil {
		t.Fatal(err)
	}
	if n := w.sessions.Load(); n != 1 {
		t.Fatalf("%d card sessions, want 1", n)
	}
	if queries, held := a.counts(); queries != 2 || held != 0 {
		t.Fatalf("authority asked %d times, %d of them with the card held; want 2 and 0", queries, held)
	}
	if r.card.verifies != 3 {
		t.Errorf("PIN verified %d times, want 3 (policy always)", r.card.verifies)
	}
	res := r.results(t)
	if len(res) != 2 || res[0].JobID != plain || res[1].JobID != pdfs {
		t.Fatalf("results %+v: want the job with nothing to fetch first", res)
	}
	for _, d := range res[1].Documents {
		if d.Level != api.LevelBT || d.TimestampError != "" || !hasSignatureTimestamp(d.Signature) {
			t.Errorf("document %s: level %s, timestamp error %q", d.ID, d.Level, d.TimestampError)
		}
	}
}

// An authority that fails leaves the PDF B-B with the reason in the
// result; it was not asked with the card held either.
func TestTimestampFailureAfterTheCardSession(t *testing.T) {
	r, _, a := tsaRig(t)
	a.answer = func(*http.Request) bool { return false }
	id := r.storePAdES(t, 1)
	r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	r.read(t, id)
	if err := r.flow.Sign(r.ctx, []string{id}, []byte("123456"), false); err != nil {
		t.Fatal(err)
	}
	if queries, held := a.counts(); queries != 1 || held != 0 {
		t.Fatalf("authority asked %d times, %d of them with the card held; want 1 and 0", queries, held)
	}
	d := r.onlyResult(t).Documents[0]
	if d.Level != api.LevelBB || !strings.Contains(d.TimestampError, "503") || hasSignatureTimestamp(d.Signature) {
		t.Fatalf("document: level %s, timestamp error %q", d.Level, d.TimestampError)
	}
}

// While the authority is waited on, the job is still in signing in the
// store; a batch cut short then (shutdown, the request gone) puts it back
// to ready with no result, to be signed again, as a crash would.
func TestTimestampCutShortLeavesTheJobWaiting(t *testing.T) {
	r, w, a := tsaRig(t)
	asked := make(chan struct{})
	a.answer = func(q *http.Request) bool {
		close(asked)
		<-q.Context().Done()
		return false
	}
	id := r.storePAdES(t, 1)
	r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	r.read(t, id)
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.flow.Sign(ctx, []string{id}, []byte("123456"), false) }()
	select {
	case <-asked:
	case <-time.After(10 * time.Second):
		t.Fatal("authority never asked")
	}
	if w.open.Load() {
		t.Fatal("card session open while the authority is waited on")
	}
	if j, err := r.store.Get(r.ctx, id); err != nil || j.State != queue.Signing {
		t.Fatalf("job during the timestamp: %s %v, want signing", j.State, err)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a batch cut short reported success")
	}
	if j, err := r.store.Get(r.ctx, id); err != nil || j.State != queue.Ready {
		t.Fatalf("job after the cut: %s %v, want ready", j.State, err)
	}
	if n := r.results(t); len(n) != 0 {
		t.Fatalf("%d results after a cut batch", len(n))
	}
	if !r.audited(t, queue.EventAbandoned) {
		t.Error("no job.abandoned in the audit log")
	}
}

// cancellingTokens hands the flow a card that cancels the batch when it is
// asked for its signer the at-th time, as shutdown past its grace would.
type cancellingTokens struct {
	tokenLayer
	c *cancellingCard
}

func (w cancellingTokens) Session(_ context.Context, _ string, fn func(card) error) error {
	return fn(w.c)
}

type cancellingCard struct {
	card
	calls, at int
	cancel    context.CancelFunc
}

func (c *cancellingCard) Signer(slot device.Slot) (crypto.Signer, error) {
	if c.calls++; c.calls == c.at {
		c.cancel()
	}
	return c.card.Signer(slot)
}

// A batch cut short in the card session (shutdown past its grace) keeps
// the job it signed before, completed after the session although the
// batch's context has ended; the job it was signing waits again.
func TestCutShortBatchKeepsWhatWasSigned(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	first := r.storeJob(t, r.signer, 1)
	second := r.storeJob(t, r.signer, 1)
	r.flow.tokens = cancellingTokens{tokenLayer: r.flow.tokens, c: &cancellingCard{card: r.card, at: 2, cancel: r.flow.batches.cancel}}
	r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	r.read(t, first, second)
	_ = r.flow.Sign(r.ctx, []string{first, second}, []byte("123456"), false)
	if res := r.onlyResult(t); res.JobID != first || res.Outcome != api.OutcomeSigned {
		t.Fatalf("result %+v, want the first job signed", res)
	}
	if j, err := r.store.Get(r.ctx, second); err != nil || j.State != queue.Ready {
		t.Fatalf("second job: %s %v, want ready", j.State, err)
	}
	if v := r.pages.last(); v.Result == nil || v.Result.Signed != 1 || v.Result.Left != 1 {
		t.Fatalf("page %+v, want one signed and one left", v)
	}
}
