package daemon_test

import (
	"context"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/internal/demo"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

// heldTSA is an RFC 3161 authority on 127.0.0.1 (`openssl ts -reply`
// behind an HTTP handler) that holds every query until the test answers
// it: each query arrives on queries as a channel the test sends true to
// (reply with a token) or false (fail with 503).
type heldTSA struct {
	URL     string
	queries chan chan bool
}

func startHeldTSA(t *testing.T) *heldTSA {
	t.Helper()
	a := &heldTSA{queries: make(chan chan bool)}
	a.URL = testenv.StartTSA(t, testenv.TSAConfig{Answer: func(r *http.Request) bool {
		answer := make(chan bool, 1)
		select {
		case a.queries <- answer:
		case <-r.Context().Done():
			return false
		}
		select {
		case ok := <-answer:
			return ok
		case <-r.Context().Done():
			return false
		}
	}}).URL
	return a
}

// next waits for the authority's next query.
func (a *heldTSA) next(t *testing.T) chan<- bool {
	t.Helper()
	select {
	case q := <-a.queries:
		return q
	case <-time.After(30 * time.Second):
		t.Fatal("the timestamp authority was never asked")
		return nil
	}
}

// cardProbe is a second PC/SC client in the test process, beside tekend's
// device layer: it opens the official's token exclusively, as ykman or
// another application would. It gets the token only when no card session
// of tekend holds it.
type cardProbe struct {
	tokens *device.Tokens
	reader string
}

func openCardProbe(t *testing.T) *cardProbe {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A short BusyWait: a held token answers ErrCardBusy soon.
	tokens, err := device.Open(ctx, device.Options{BusyWait: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range tokens.Events() { // the watcher must be read
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tokens.Close(ctx)
	})
	p := &cardProbe{tokens: tokens}
	err = testenv.WaitFor(ctx, 20*time.Second, func() error {
		present, err := tokens.Present(ctx)
		if err != nil || len(present) == 0 {
			return fmt.Errorf("no token present: %v", err)
		}
		p.reader = present[0]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// open opens a session of its own on the token and reads the signature
// slot's PIN policy.
func (p *cardProbe) open() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.tokens.Session(ctx, p.reader, func(s *device.Session) error {
		_, err := s.SlotPINPolicy(device.SlotSignature)
		return err
	})
}

// hasSignatureTimestamp reports whether a signed PDF's CMS carries the
// signature-time-stamp attribute (RFC 5126 §5.11.4): its OID, hex-encoded
// as in /Contents.
func hasSignatureTimestamp(pdf []byte) bool {
	oid, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14})
	return strings.Contains(string(pdf), hex.EncodeToString(oid))
}

// pdfsigValid checks the last signature of pdf with poppler's pdfsig.
func pdfsigValid(t *testing.T, pdf []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "signed.pdf")
	if err := os.WriteFile(p, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testenv.LookPath(t, "pdfsig"), p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Signature is Valid") || !strings.Contains(string(out), "Total document signed") {
		t.Fatalf("pdfsig: %v\n%s", err, out)
	}
}

// startTimestamping runs a terminal whose timestamp authority is a, with
// siti's token on the reader and a job of n PDF letters waiting for her.
func startTimestamping(t *testing.T, a *heldTSA, n int) (*tekentest.Terminal, *tekentest.Official, *tekentest.Kiosk, *api.Job) {
	t.Helper()
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca, func(c *daemon.Config) {
		c.Signing.TSAURL = a.URL
		c.Signing.TSATimeout = daemon.Duration(60 * time.Second)
	})
	siti := ca.NewOfficial(t, "Dr. Siti Rahmawati, M.Si.", "198703152010012003", "123456", 7101)
	var docs []api.Document
	for i := range n {
		pdf := demo.LetterPDF("Dinas Komunikasi dan Informatika", fmt.Sprintf("188.4/%d/DISKOMINFO/XI/2026", 900+i),
			"Surat Keputusan Tim Percepatan", "Keputusan ini berlaku sejak tanggal ditetapkan.")
		doc := api.NewDocument(fmt.Sprintf("sk-%d", i), "sk.pdf", "application/pdf", pdf)
		doc.Format = api.FormatPAdES
		doc.Visible = &api.Visible{VerifyURL: "https://tte.sultraprov.go.id/v/0002"}
		docs = append(docs, doc)
	}
	job := tm.DispatchDocs(siti, "Surat Keputusan Tim Percepatan", "188.4/900", docs...)
	if err := siti.Card.Insert(context.Background(), tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k := tm.Kiosk()
	k.Await("the letter", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == 1 })
	return tm, siti, k, job
}

// result waits for the job's result.
func result(t *testing.T, tm *tekentest.Terminal, jobID string) *api.Result {
	t.Helper()
	select {
	case r := <-tm.Results:
		if r.JobID != jobID || r.Outcome != api.OutcomeSigned {
			t.Fatalf("result %+v", r)
		}
		return r
	case <-time.After(60 * time.Second):
		t.Fatal("no result")
		return nil
	}
}

// The token is held for the signatures only. While tekend signs, another
// application cannot open the token (the probe is refused: the check can
// tell); while the timestamp authority takes its time over each letter,
// it can, because the card session has already closed. The letters then
// arrive B-T, valid for pdfsig, and the token's busy time does not count
// the authority's.
func TestTimestampAfterTheCardIsReleased(t *testing.T) {
	a := startHeldTSA(t)
	tm, siti, k, job := startTimestamping(t, a, 2)
	probe := openCardProbe(t)

	held, release := siti.HoldSignature()
	signed := k.SignInBackground([]string{job.JobID}, "123456")
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the token was never asked to sign")
	}
	if err := probe.open(); !errors.Is(err, device.ErrCardBusy) {
		release()
		t.Fatalf("probe while tekend signs: %v, want ErrCardBusy", err)
	}
	release()

	const slow = 3 * time.Second // the authority's time per letter
	for i := range 2 {
		answer := a.next(t)
		if err := probe.open(); err != nil {
			answer <- false
			t.Fatalf("letter %d: the token is still held while the timestamp authority is waited on: %v", i, err)
		}
		time.Sleep(slow)
		answer <- true
	}
	if code := <-signed; code != http.StatusOK {
		t.Fatalf("sign: %d", code)
	}
	r := result(t, tm, job.JobID)
	if len(r.Documents) != 2 {
		t.Fatalf("%d documents signed, want 2", len(r.Documents))
	}
	for _, d := range r.Documents {
		if d.Level != api.LevelBT || d.TimestampError != "" || !hasSignatureTimestamp(d.Signature) {
			t.Fatalf("document %s: level %s, timestamp error %q", d.ID, d.Level, d.TimestampError)
		}
		pdfsigValid(t, d.Signature)
	}
	// Two letters each waited slow on the authority; the token was busy
	// for far less (open, PIN twice, two signatures, reset).
	if busy := tokenBusy(t, tm.MetricsURL); busy >= slow.Seconds() {
		t.Errorf("teken_token_busy_seconds_total %.2f s: the authority's %v per letter counted as token time", busy, slow)
	}
}

// An authority that fails leaves the letter B-B with the reason in the
// result, and the token was free during that failed request too.
func TestTimestampFailureKeepsBBWithTheCardReleased(t *testing.T) {
	a := startHeldTSA(t)
	tm, _, k, job := startTimestamping(t, a, 1)
	probe := openCardProbe(t)

	signed := k.SignInBackground([]string{job.JobID}, "123456")
	answer := a.next(t)
	if err := probe.open(); err != nil {
		answer <- false
		t.Fatalf("the token is still held while the timestamp authority is waited on: %v", err)
	}
	answer <- false
	if code := <-signed; code != http.StatusOK {
		t.Fatalf("sign: %d", code)
	}
	r := result(t, tm, job.JobID)
	d := r.Documents[0]
	if d.Level != api.LevelBB || !strings.Contains(d.TimestampError, "503") || hasSignatureTimestamp(d.Signature) {
		t.Fatalf("document: level %s, timestamp error %q", d.Level, d.TimestampError)
	}
	pdfsigValid(t, d.Signature)
}
