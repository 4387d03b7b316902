package route

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/transport"
)

// plainSigner "signs" a job as its JSON, so fake terminals read it back
// without keys.
type plainSigner struct{}

func (plainSigner) SignJob(j *api.Job) ([]byte, error) { return json.Marshal(j) }

// fakePub is a publisher that keeps what it was given, or fails.
type fakePub struct {
	mu   sync.Mutex
	jobs []transport.PendingJob
	fail error
}

func (p *fakePub) PublishEnvelope(_ context.Context, j transport.PendingJob) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.jobs = append(p.jobs, j)
	return nil
}

func (p *fakePub) setFail(err error) {
	p.mu.Lock()
	p.fail = err
	p.mu.Unlock()
}

// published returns the distinct jobs published so far, decoded, in the
// order of their first publication: publishing one again is allowed.
func (p *fakePub) published(t testing.TB) []*api.Job {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*api.Job
	seen := map[string]bool{}
	for _, pj := range p.jobs {
		if !seen[pj.JobID] {
			seen[pj.JobID] = true
			out = append(out, decodeJob(t, pj.Envelope))
		}
	}
	return out
}

// envelope returns the envelope last published for a job.
func (p *fakePub) envelope(jobID string) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pj := range p.jobs {
		if pj.JobID == jobID {
			return pj.Envelope
		}
	}
	return nil
}

// waitJobs waits until at least n jobs were published and returns them.
func (p *fakePub) waitJobs(t testing.TB, n int) []*api.Job {
	t.Helper()
	if err := testenv.WaitFor(context.Background(), 10*time.Second, func() error {
		if got := len(p.published(t)); got < n {
			return fmt.Errorf("%d of %d jobs published", got, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return p.published(t)
}

func decodeJob(t testing.TB, env []byte) *api.Job {
	t.Helper()
	var j api.Job
	if err := json.Unmarshal(env, &j); err != nil {
		t.Fatalf("decode job: %v", err)
	}
	return &j
}

func cert(i int) string { return fmt.Sprintf("%064x", i+1) }

// letter is a route of n steps, all paraf but the last, over terminals
// t1, t2, t1, …
func letter(id string, n int) Route {
	r := Route{ID: id, Title: "Undangan rapat", Number: "005/" + id + "/2026", Sender: "Sekretariat Daerah",
		PDF: []byte("%PDF-1.7 surat " + id + "\n")}
	for i := range n {
		kind := KindParaf
		if i == n-1 {
			kind = KindTTD
		}
		r.Steps = append(r.Steps, Step{Signer: api.Signatory{CertSHA256: cert(i), Name: fmt.Sprintf("Pejabat %d", i)},
			Kind: kind, Terminal: fmt.Sprintf("t%d", i%2+1)})
	}
	return r
}

// signedBy is the signed result of a job: its PDF with a mark appended,
// as a PAdES incremental update would be.
func signedBy(j *api.Job) *api.Result {
	d := j.Documents[0]
	sig := append(bytes.Clone(d.Content), []byte("|sig "+j.Signer.CertSHA256[56:]+"\n")...)
	return &api.Result{V: 1, JobID: j.JobID, Terminal: j.Terminal, Outcome: api.OutcomeSigned, CompletedAt: time.Now().UTC(),
		SignerCert: []byte{0x30, 0x00},
		Documents:  []api.SignedDocument{{ID: d.ID, SHA256: d.SHA256, Format: api.FormatPAdES, Signature: sig, SignedAt: time.Now().UTC(), Level: "B-B"}}}
}

func openRouter(t testing.TB, path string, cfg Config) *Router {
	t.Helper()
	cfg.Path, cfg.Signer = path, plainSigner{}
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = time.Millisecond, 20*time.Millisecond
	}
	r, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func started(t *testing.T, cfg Config, rt Route) (*Router, *fakePub, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "routes.ledger")
	r := openRouter(t, path, cfg)
	pub := &fakePub{}
	if err := r.Resume(t.Context(), pub); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context(), rt); err != nil {
		t.Fatal(err)
	}
	return r, pub, path
}

func status(t testing.TB, r *Router, id string) Status {
	t.Helper()
	s, ok := r.Get(id)
	if !ok {
		t.Fatalf("route %s unknown", id)
	}
	return s
}

func TestAdvance(t *testing.T) {
	rt := letter("surat-1", 3)
	r, pub, _ := started(t, Config{}, rt)
	ctx := t.Context()
	pdf := rt.PDF
	for i := range 3 {
		jobs := pub.waitJobs(t, i+1)
		j := jobs[i]
		if j.Terminal != rt.Steps[i].Terminal || j.Signer != rt.Steps[i].Signer || j.Title != rt.Title {
			t.Fatalf("step %d job: terminal %s signer %+v title %q", i, j.Terminal, j.Signer, j.Title)
		}
		d := j.Documents[0]
		if !bytes.Equal(d.Content, pdf) || d.Format != api.FormatPAdES || d.Visible == nil || d.Visible.Page != 0 {
			t.Fatalf("step %d carries %q (%s, %+v), want %q", i, d.Content, d.Format, d.Visible, pdf)
		}
		if err := j.Validate(); err != nil {
			t.Fatalf("step %d job: %v", i, err)
		}
		res := signedBy(j)
		if err := r.OnResult(ctx, res); err != nil {
			t.Fatal(err)
		}
		pdf = res.Documents[0].Signature
	}
	s := status(t, r, rt.ID)
	if s.State != RouteDone || s.Current != 3 || !bytes.Equal(s.PDF, pdf) {
		t.Fatalf("route %s at %d, pdf %q", s.State, s.Current, s.PDF)
	}
	if n := bytes.Count(s.PDF, []byte("|sig ")); n != 3 {
		t.Errorf("final PDF carries %d marks, want 3", n)
	}
	ids := map[string]bool{}
	for i, st := range s.Steps {
		if st.State != StepSigned || st.SignedAt.IsZero() || st.SentAt.IsZero() || ids[st.JobID] || st.Envelope != nil {
			t.Errorf("step %d: %+v", i, st)
		}
		ids[st.JobID] = true
	}
	if got := len(pub.published(t)); got != 3 {
		t.Errorf("%d jobs published, want 3", got)
	}
}

func TestStopOnRejection(t *testing.T) {
	for _, outcome := range []api.Outcome{api.OutcomeRejected, api.OutcomeExpired, api.OutcomeFailed, api.OutcomeCancelled} {
		t.Run(string(outcome), func(t *testing.T) {
			rt := letter("surat-2", 3)
			r, pub, _ := started(t, Config{}, rt)
			ctx := t.Context()
			if err := r.OnResult(ctx, signedBy(pub.waitJobs(t, 1)[0])); err != nil {
				t.Fatal(err)
			}
			j := pub.waitJobs(t, 2)[1]
			no := &api.Result{V: 1, JobID: j.JobID, Terminal: j.Terminal, Outcome: outcome, Reason: api.ReasonRejectedBySigner,
				Detail: "nomor surat salah", CompletedAt: time.Now().UTC()}
			if err := r.OnResult(ctx, no); err != nil {
				t.Fatal(err)
			}
			s := status(t, r, rt.ID)
			st := s.Steps[1]
			if s.State != RouteStopped || s.Current != 1 || st.State != StepState(outcome) || st.Reason != api.ReasonRejectedBySigner || st.Detail != "nomor surat salah" {
				t.Fatalf("route %s at %d, step %+v", s.State, s.Current, st)
			}
			if s.Steps[2].State != StepPending || s.Steps[2].JobID != "" {
				t.Errorf("step after the rejection: %+v", s.Steps[2])
			}
			// A late signed result of the stopped step changes nothing.
			if err := r.OnResult(ctx, signedBy(j)); err != nil {
				t.Fatal(err)
			}
			if got := status(t, r, rt.ID); got.State != RouteStopped || len(pub.published(t)) != 2 {
				t.Errorf("after a late result: %s, %d jobs", got.State, len(pub.published(t)))
			}
			if p, _ := r.Pending(ctx, j.Terminal); len(p) != 0 {
				t.Errorf("a stopped route's job is pending: %v", p)
			}
		})
	}
}

func TestIgnoredResults(t *testing.T) {
	rt := letter("surat-3", 3)
	r, pub, path := started(t, Config{}, rt)
	ctx := t.Context()
	j0 := pub.waitJobs(t, 1)[0]
	first := signedBy(j0)
	if err := r.OnResult(ctx, first); err != nil {
		t.Fatal(err)
	}
	j1 := pub.waitJobs(t, 2)[1]
	before, _ := os.ReadFile(path)
	for name, res := range map[string]*api.Result{
		"duplicate":      first,
		"old step":       {V: 1, JobID: j0.JobID, Terminal: j0.Terminal, Outcome: api.OutcomeRejected, Reason: api.ReasonRejectedBySigner},
		"unknown job":    {V: 1, JobID: api.NewJobID(), Terminal: j1.Terminal, Outcome: api.OutcomeSigned},
		"other terminal": {V: 1, JobID: j1.JobID, Terminal: "t9", Outcome: api.OutcomeRejected, Reason: api.ReasonRejectedBySigner},
	} {
		if err := r.OnResult(ctx, res); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	after, _ := os.ReadFile(path)
	s := status(t, r, rt.ID)
	if s.State != RouteRunning || s.Current != 1 || !bytes.Equal(before, after) {
		t.Fatalf("route %s at %d; ledger changed: %v", s.State, s.Current, !bytes.Equal(before, after))
	}
	if r.Owns(api.NewJobID()) || !r.Owns(j1.JobID) {
		t.Error("Owns")
	}
}

func TestSignedPDFMustExtend(t *testing.T) {
	rt := letter("surat-4", 2)
	r, pub, _ := started(t, Config{}, rt)
	res := signedBy(pub.waitJobs(t, 1)[0])
	res.Documents[0].Signature = []byte("%PDF-1.7 another letter, longer than the first")
	if err := r.OnResult(t.Context(), res); err != nil {
		t.Fatal(err)
	}
	s := status(t, r, rt.ID)
	if s.State != RouteStopped || s.Steps[0].State != StepFailed || !strings.Contains(s.Steps[0].Detail, "does not extend") {
		t.Fatalf("%s: %+v", s.State, s.Steps[0])
	}
}

func TestRefusedReceipt(t *testing.T) {
	rt := letter("surat-5", 2)
	r, pub, _ := started(t, Config{}, rt)
	j := pub.waitJobs(t, 1)[0]
	r.OnReceipt(t.Context(), &api.Receipt{V: 1, Terminal: j.Terminal, JobID: j.JobID, Status: api.ReceiptStored})
	if s := status(t, r, rt.ID); s.State != RouteRunning {
		t.Fatalf("stored receipt: %s", s.State)
	}
	r.OnReceipt(t.Context(), &api.Receipt{V: 1, Terminal: j.Terminal, JobID: j.JobID, Status: api.ReceiptRefused, Reason: api.ReasonExpired, Detail: "window ended"})
	s := status(t, r, rt.ID)
	if s.State != RouteStopped || s.Steps[0].State != StepRefused || s.Steps[0].Reason != api.ReasonExpired {
		t.Fatalf("%s: %+v", s.State, s.Steps[0])
	}
}

func TestJobStore(t *testing.T) {
	rt := letter("surat-6", 2)
	r, pub, _ := started(t, Config{}, rt)
	ctx := t.Context()
	j0 := pub.waitJobs(t, 1)[0]
	other := transport.PendingJob{Terminal: "t1", JobID: api.NewJobID(), Envelope: []byte("x")}
	if err := r.Put(ctx, other); err != nil {
		t.Fatal(err)
	}
	p, err := r.Pending(ctx, "t1")
	if err != nil || len(p) != 2 || p[0].JobID != j0.JobID || p[1].JobID != other.JobID {
		t.Fatalf("pending at t1: %+v, %v", p, err)
	}
	if p, _ := r.Pending(ctx, "t2"); len(p) != 0 {
		t.Fatalf("pending at t2: %+v", p)
	}
	_ = r.Remove(ctx, "t1", other.JobID)
	if err := r.OnResult(ctx, signedBy(j0)); err != nil {
		t.Fatal(err)
	}
	_ = r.Remove(ctx, "t1", j0.JobID) // as the dispatcher does after OnResult
	j1 := pub.waitJobs(t, 2)[1]
	if p, _ := r.Pending(ctx, "t1"); len(p) != 0 {
		t.Fatalf("pending at t1 after its step: %+v", p)
	}
	p, _ = r.Pending(ctx, "t2")
	if len(p) != 1 || p[0].JobID != j1.JobID || !bytes.Equal(p[0].Envelope, pub.envelope(j1.JobID)) {
		t.Fatalf("pending at t2: %+v", p)
	}
	// A job the dispatcher forgot (refused, cancelled) is not re-sent.
	_ = r.Remove(ctx, "t2", j1.JobID)
	if p, _ := r.Pending(ctx, "t2"); len(p) != 0 {
		t.Fatalf("pending at t2 after Remove: %+v", p)
	}
}

// TestRestartPublishesOwed: a job recorded and never taken by the broker,
// and a step signed without its successor's job, both go out on Resume.
func TestRestartPublishesOwed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.ledger")
	rt := letter("surat-7", 3)
	r := openRouter(t, path, Config{})
	pub := &fakePub{}
	_ = r.Resume(t.Context(), pub)
	if err := r.Start(t.Context(), rt); err != nil {
		t.Fatal(err)
	}
	pub.setFail(errors.New("broker down"))
	if err := r.OnResult(t.Context(), signedBy(pub.waitJobs(t, 1)[0])); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(raw), "\n")
	if !strings.Contains(lines[len(lines)-2], `"op":"job"`) {
		t.Fatalf("last record: %s", lines[len(lines)-2])
	}

	// Step 1's job recorded, not published.
	r2 := openRouter(t, path, Config{})
	if s := status(t, r2, rt.ID); s.Current != 1 || s.Steps[1].State != StepPending || s.Steps[1].JobID == "" {
		t.Fatalf("after reopen: %+v", s.Steps[1])
	}
	want := status(t, r2, rt.ID).Steps[1].JobID
	pub2 := &fakePub{}
	_ = r2.Resume(t.Context(), pub2)
	if j := pub2.waitJobs(t, 1)[0]; j.JobID != want {
		t.Fatalf("published %s, want %s", j.JobID, want)
	}
	_ = r2.Close(context.Background())

	// Step 0 signed, step 1's job never made.
	if err := os.WriteFile(path, []byte(strings.Join(lines[:len(lines)-2], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	r3 := openRouter(t, path, Config{})
	if s := status(t, r3, rt.ID); s.Current != 1 || s.Steps[1].JobID != "" {
		t.Fatalf("after cutting the job: %+v", s.Steps[1])
	}
	pub3 := &fakePub{}
	_ = r3.Resume(t.Context(), pub3)
	j := pub3.waitJobs(t, 1)[0]
	if !bytes.HasSuffix(j.Documents[0].Content, []byte("|sig "+cert(0)[56:]+"\n")) || j.Terminal != "t2" {
		t.Fatalf("job made on resume: %s %q", j.Terminal, j.Documents[0].Content)
	}
}

func TestTornAndCorruptLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.ledger")
	r := openRouter(t, path, Config{})
	_ = r.Resume(t.Context(), &fakePub{})
	for i := range 3 {
		if err := r.Start(t.Context(), letter(fmt.Sprintf("surat-%d", i), 2)); err != nil {
			t.Fatal(err)
		}
	}
	_ = r.Close(context.Background())
	good, _ := os.ReadFile(path)

	torn := append(bytes.Clone(good), []byte(`{"op":"signed","route":"surat-1","st`)...)
	_ = os.WriteFile(path, torn, 0o600)
	r2 := openRouter(t, path, Config{})
	if got := len(r2.Routes()); got != 3 {
		t.Fatalf("%d routes after a torn line", got)
	}
	_ = r2.Close(context.Background())
	if now, _ := os.ReadFile(path); !bytes.Equal(now, good) {
		t.Fatalf("torn line not cut: %d bytes, want %d", len(now), len(good))
	}

	lines := bytes.SplitAfter(good, []byte("\n"))
	lines[2] = []byte("{\"op\":\"sent\",\"route\":\"surat-0\" garbage\n")
	_ = os.WriteFile(path, bytes.Join(lines, nil), 0o600)
	_, err := Open(Config{Path: path, Signer: plainSigner{}})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 3 {
		t.Fatalf("corrupt middle line: %v", err)
	}
	if _, err := ReadLedger(path); !errors.As(err, &le) || le.Line != 3 {
		t.Fatalf("ReadLedger: %v", err)
	}
}

func TestCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.ledger")
	r := openRouter(t, path, Config{CompactBytes: 8 << 10})
	pub := &fakePub{}
	_ = r.Resume(t.Context(), pub)
	const n = 12
	for i := range n {
		if err := r.Start(t.Context(), letter(fmt.Sprintf("surat-%02d", i), 3)); err != nil {
			t.Fatal(err)
		}
	}
	for done := 0; done < 2*n; done++ {
		jobs := pub.waitJobs(t, n+done)
		if err := r.OnResult(t.Context(), signedBy(jobs[done])); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Forget("surat-00"); err == nil {
		t.Fatal("forgot a running route")
	}
	raw, _ := os.ReadFile(path)
	if !bytes.Contains(raw, []byte(`"op":"snapshot"`)) {
		t.Fatalf("no compaction in %d bytes", len(raw))
	}
	_ = r.Close(context.Background()) // the last "sent" records are written
	want := r.Routes()
	r2 := openRouter(t, path, Config{})
	got := r2.Routes()
	a, _ := json.Marshal(want)
	b, _ := json.Marshal(got)
	if !bytes.Equal(a, b) {
		t.Fatalf("state after reopen differs:\n%s\nwant\n%s", b, a)
	}
	for i := range n {
		s := status(t, r2, fmt.Sprintf("surat-%02d", i))
		if s.Current != 2 || s.Steps[2].JobID == "" || len(s.Steps[2].Envelope) == 0 {
			t.Fatalf("route %d: at %d, %+v", i, s.Current, s.Steps[2])
		}
	}
}

func TestBuildHook(t *testing.T) {
	build := func(rt *Route, step Step, index int, pdf []byte) (*api.Job, error) {
		if index == 2 {
			return nil, errors.New("no anchor for the signature")
		}
		j := NewJob(rt, step, pdf, time.Now(), time.Hour)
		j.Fields = append(j.Fields, api.Field{Label: "Tahap", Value: fmt.Sprintf("%d %s", index+1, step.Kind)})
		return j, nil
	}
	rt := letter("surat-8", 3)
	r, pub, _ := started(t, Config{Build: build}, rt)
	for i := range 2 {
		j := pub.waitJobs(t, i+1)[i]
		if f := j.Fields[len(j.Fields)-1]; f.Value != fmt.Sprintf("%d paraf", i+1) {
			t.Fatalf("step %d field %+v", i, f)
		}
		if err := r.OnResult(t.Context(), signedBy(j)); err != nil {
			t.Fatal(err)
		}
	}
	s := status(t, r, rt.ID)
	if s.State != RouteStopped || s.Current != 2 || s.Steps[2].State != StepFailed || !strings.Contains(s.Steps[2].Detail, "no anchor") {
		t.Fatalf("%s at %d: %+v", s.State, s.Current, s.Steps[2])
	}
}

func TestOpenErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.ledger")
	openRouter(t, path, Config{})
	if _, err := Open(Config{Path: path, Signer: plainSigner{}}); err == nil || !strings.Contains(err.Error(), "held by another router") {
		t.Fatalf("second Open: %v", err)
	}
	r := openRouter(t, filepath.Join(t.TempDir(), "other.ledger"), Config{})
	if err := r.Start(t.Context(), letter("x", 1)); !errors.Is(err, ErrNoPublisher) {
		t.Fatalf("Start before Resume: %v", err)
	}
	_ = r.Resume(t.Context(), &fakePub{})
	bad := letter("x", 1)
	bad.Steps[0].Kind = "stempel"
	if err := r.Start(t.Context(), bad); err == nil {
		t.Fatal("a step of an unknown kind")
	}
	untitled := letter("x", 1)
	untitled.Title = ""
	if err := r.Start(t.Context(), untitled); err == nil || !strings.Contains(err.Error(), "title") {
		t.Fatalf("a letter without a title: %v", err)
	}
	if _, ok := r.Get("x"); ok {
		t.Fatal("a route that could not begin was recorded")
	}
	if err := r.Start(t.Context(), letter("x", 1)); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context(), letter("x", 1)); !errors.Is(err, ErrExists) {
		t.Fatalf("second Start: %v", err)
	}
}

func TestTooLargeStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.ledger")
	r := openRouter(t, path, Config{})
	pub := &fakePub{fail: &transport.TooLargeError{JobID: "x", Size: 2, Limit: 1}}
	_ = r.Resume(t.Context(), pub)
	rt := letter("surat-9", 2)
	if err := r.Start(t.Context(), rt); !errors.Is(err, transport.ErrTooLarge) {
		t.Fatalf("Start: %v", err)
	}
	s := status(t, r, rt.ID)
	if s.State != RouteStopped || s.Steps[0].State != StepFailed || s.Steps[0].Detail == "" {
		t.Fatalf("%s: %+v", s.State, s.Steps[0])
	}
}
