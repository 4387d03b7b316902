package daemon

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/queue"
	"github.com/tekenid/teken/signature/pades"
)

// Every PDF the pades fuzzers know, sent as a pades letter, leaves the
// terminal's job handler either stored-then-finished or refused — never as
// a handler error, which would have the transport retry the message
// forever and hold back every later job, Cancel and ResultAck. Each Result
// the terminal wrote passes the terminal's own validation.
func TestEveryCorpusPDFLeavesIntake(t *testing.T) {
	corpus := fuzzCorpus(t, filepath.Join("..", "signature", "pades", "testdata", "fuzz"))
	// Poison found by attack: a filter name with a control character,
	// which the parser's error names and which went into the Result's
	// detail, and a filter list too long for a detail.
	corpus["poison/control-in-filter"] = xrefStreamPDF("/Fl#01ateDecode")
	corpus["poison/long-filter-list"] = xrefStreamPDF("[" + strings.Repeat("/FlateDecodeX ", 100) + "]")
	corpus["poison/bidi-in-filter"] = xrefStreamPDF("/Fl#E2#80#AEateDecode")
	if len(corpus) < 3 {
		t.Fatalf("only %d corpus entries found", len(corpus))
	}
	r := newFlowRig(t, device.PINPolicyOnce)
	for name, pdf := range corpus {
		t.Run(name, func(t *testing.T) {
			id, env := r.padesEnvelope(t, pdf)
			rc, err := r.intake.HandleJob(r.ctx, env)
			if err != nil {
				t.Fatalf("handler error (the message would be retried forever): %v", err)
			}
			switch rc.Status {
			case api.ReceiptRefused:
				if _, err := api.Encode(&rc); err != nil {
					t.Errorf("the refusal's receipt fails our own validation: %v", err)
				}
				return
			case api.ReceiptStored:
			default:
				t.Fatalf("receipt %+v", rc)
			}
			j, err := r.store.Get(r.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case j.State == queue.Ready:
			case j.State == queue.Done && j.Outcome == queue.Failed:
				res, err := r.store.Result(r.ctx, j.ResultSeq)
				if err != nil {
					t.Fatal(err)
				}
				got, err := api.DecodeResult(res.Payload)
				if err != nil {
					t.Fatalf("stored result fails our own validation: %v", err)
				}
				if got.Reason != api.ReasonBadDocument || got.Detail == "" {
					t.Errorf("result %+v, want bad_document with a detail", got)
				}
			default:
				t.Fatalf("job %s/%s after intake", j.State, j.Outcome)
			}
		})
	}
}

// padesEnvelope signs a job carrying pdf as a pades document for the
// rig's official.
func (r *flowRig) padesEnvelope(t *testing.T, pdf []byte) (string, []byte) {
	t.Helper()
	now := r.clock.now().UTC().Truncate(time.Second)
	j := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: "kendari-setda-01", IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		Signer: api.Signatory{CertSHA256: r.signer}, Title: "Surat", Number: "1", Sender: "Setda"}
	d := api.NewDocument("surat", "surat.pdf", "application/pdf", pdf)
	d.Format = api.FormatPAdES
	j.Documents = []api.Document{d}
	env, err := r.jobs.SignJob(j)
	if err != nil {
		// The dispatcher refuses to sign what no terminal would take
		// (an empty document); the terminal never sees it.
		t.Skipf("dispatcher refuses: %v", err)
	}
	return j.JobID, env
}

// xrefStreamPDF is a one-page PDF whose cross-reference stream asks for
// filter, with every offset right, so the parser reaches the filter.
func xrefStreamPDF(filter string) []byte { return xrefStreamPDFWith(filter, "\x00\x00\x00\xff", "") }

// xrefStreamPDFWith is xrefStreamPDF with the stream's data and more
// entries for the catalog. Without a filter and data, the stream holds
// the right entries, so the document is whole.
func xrefStreamPDFWith(filter, data, catalog string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n")
	off := []int{0}
	for _, obj := range []string{
		"<< /Type /Catalog /Pages 2 0 R " + catalog + ">>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
	} {
		off = append(off, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(off)-1, obj)
	}
	xref := b.Len()
	dict := "/Filter " + filter
	if filter == "" {
		dict = ""
		entries := []byte{0, 0, 0, 0xff} // object 0: free
		for _, o := range append(off[1:], xref) {
			entries = append(entries, 1, byte(o>>8), byte(o), 0)
		}
		data = string(entries)
	}
	fmt.Fprintf(&b, "4 0 obj\n<< /Type /XRef /Size 5 /Root 1 0 R /W [1 2 1] %s /Length %d >>\nstream\n%s\nendstream\nendobj\n", dict, len(data), data)
	fmt.Fprintf(&b, "startxref\n%d\n%%%%EOF\n", xref)
	return b.Bytes()
}

// fuzzCorpus reads every entry of the Go fuzz corpora under dir whose one
// value is a []byte.
func fuzzCorpus(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" {
			continue
		}
		lit, ok := strings.CutPrefix(lines[1], "[]byte(")
		if !ok {
			continue
		}
		v, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f)] = []byte(v)
	}
	return out
}

// A job that was finished, acknowledged and then pruned by retention is
// refused when its envelope comes again within its window: it is never
// stored, shown or signed a second time.
func TestReplayAfterPruneIsNotSignedAgain(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	id, env := r.envelope(t, r.signer, 1)
	if rc, err := r.intake.HandleJob(r.ctx, env); err != nil || rc.Status != api.ReceiptStored {
		t.Fatalf("first delivery: %+v %v", rc, err)
	}
	r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	r.read(t, id)
	if err := r.flow.Sign(r.ctx, []string{id}, []byte("123456"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.intake.resultAcked(r.ctx, nil, id); err != nil {
		t.Fatal(err)
	}
	// Past the rig's one-minute retention, well within the day's window.
	r.clock.advance(2 * time.Hour)
	if p, err := r.store.Prune(r.ctx); err != nil || p.Jobs != 1 {
		t.Fatalf("prune: %+v %v", p, err)
	}
	if _, err := r.store.Get(r.ctx, id); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("job still stored after pruning: %v", err)
	}
	rc, err := r.intake.HandleJob(r.ctx, env)
	if err != nil {
		t.Fatalf("replay: handler error %v", err)
	}
	if rc.Status != api.ReceiptDuplicate {
		t.Fatalf("replay answered %+v, want duplicate", rc)
	}
	if _, err := r.store.Get(r.ctx, id); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("the replay was stored again: %v", err)
	}
	r.flow.presence(r.ctx, device.Event{Kind: device.Left, Reader: "Reader 0"})
	r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	if v := r.pages.last(); len(v.Jobs) != 0 {
		t.Errorf("the replay is shown: %+v", v.Jobs)
	}
}

// PDF work has a budget, per document and per job, and a letter with
// active content is never signed: either way the job ends as bad_document
// with a detail that names what was found or which limit was reached.
func TestPDFBudgetAndActiveContentEndAsBadDocument(t *testing.T) {
	var bomb bytes.Buffer
	zw := zlib.NewWriter(&bomb)
	if _, err := zw.Write(make([]byte, 3<<20)); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	for _, c := range []struct {
		name   string
		pdf    []byte
		budget pdfBudget
		want   string
	}{
		{"inflates past the document's limit", xrefStreamPDFWith("/FlateDecode", bomb.String(), ""),
			pdfBudget{perDoc: pades.Limits{MaxDecompressedBytes: 1 << 20}, perJob: 4 << 20}, "max_decompressed_bytes"},
		{"inflates past the job's limit", xrefStreamPDFWith("/FlateDecode", bomb.String(), ""),
			pdfBudget{perDoc: pades.Limits{MaxDecompressedBytes: 8 << 20}, perJob: 2 << 20}, "signing.pdf_max_job_decompressed_bytes"},
		{"a whole letter is accepted", xrefStreamPDFWith("", "", ""), pdfBudget{}, ""},
		{"opens with JavaScript", xrefStreamPDFWith("", "", "/OpenAction << /S /JavaScript /JS (app.alert(1)) >> "),
			pdfBudget{}, "active content"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newFlowRig(t, device.PINPolicyOnce)
			r.intake.pdf = c.budget
			id, env := r.padesEnvelope(t, c.pdf)
			rc, err := r.intake.HandleJob(r.ctx, env)
			if err != nil || rc.Status != api.ReceiptStored {
				t.Fatalf("intake: %+v %v", rc, err)
			}
			j, err := r.store.Get(r.ctx, id)
			if c.want == "" {
				if err != nil || j.State != queue.Ready {
					t.Fatalf("job %+v %v, want ready", j, err)
				}
				return
			}
			if err != nil || j.State != queue.Done || j.Outcome != queue.Failed {
				t.Fatalf("job %+v %v, want done failed", j, err)
			}
			res := r.onlyResult(t)
			if res.Reason != api.ReasonBadDocument || !strings.Contains(res.Detail, c.want) {
				t.Errorf("result %s %q, want bad_document naming %q", res.Reason, res.Detail, c.want)
			}
		})
	}
}

// A failure that may pass (here: the store closed under intake) is retried
// and says so — in the metric, the status and readiness — until a message
// goes through; one that never can is acknowledged and counted.
func TestIntakeClassifiesFailures(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	for _, c := range []struct {
		err       error
		permanent bool
	}{
		{queue.ErrClosed, false},
		{queue.ErrFull, false},
		{context.DeadlineExceeded, false},
		{fmt.Errorf("store job x: %w", queue.ErrInvalid), true},
		{&queue.TransitionError{ID: "x", From: queue.Done, To: queue.Ready}, true},
	} {
		if got := permanent(c.err); got != c.permanent {
			t.Errorf("permanent(%v) = %v", c.err, got)
		}
	}
	_, env := r.envelope(t, r.signer, 1)
	if err := r.store.Close(r.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.intake.HandleJob(r.ctx, env); err == nil {
		t.Fatal("a job taken with the store closed")
	}
	if why := r.intake.retrying.reason(); !strings.Contains(why, "closed") {
		t.Errorf("retrying %q", why)
	}
	if n := testutil.ToFloat64(r.intake.metrics.intakeFailures.WithLabelValues("transient")); n != 1 {
		t.Errorf("transient failures %v, want 1", n)
	}
	if err := r.intake.transient(nil); err != nil || r.intake.retrying.reason() != "" {
		t.Errorf("a success leaves retrying %q", r.intake.retrying.reason())
	}
}
