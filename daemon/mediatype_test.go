package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/queue"
)

const docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

// withDocx adds a Word document to a job.
func withDocx(j *api.Job) {
	j.Documents = append(j.Documents, api.NewDocument("konsep", "konsep.docx", docx, []byte("PK\x03\x04 word/document.xml")))
}

// What you see is what you sign: a job with a document the page cannot
// show is refused at the door, and nothing of it is stored.
func TestUnrenderableDocumentRefusedAtIntake(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	id, rc := r.offer(t, withDocx)
	if rc.Status != api.ReceiptRefused || rc.Reason != api.ReasonUnsupportedMediaType || rc.JobID != id {
		t.Fatalf("receipt %+v, want refused %s", rc, api.ReasonUnsupportedMediaType)
	}
	for _, want := range append([]string{"konsep", docx}, kiosk.RenderableTypes()...) {
		if !strings.Contains(rc.Detail, want) {
			t.Errorf("detail %q does not name %s", rc.Detail, want)
		}
	}
	if _, err := api.Encode(&rc); err != nil {
		t.Errorf("the refusal fails our own validation: %v", err)
	}
	if _, err := r.store.Get(r.ctx, id); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("refused job stored: %v", err)
	}
	if !r.audited(t, eventRefused) {
		t.Error("no job.refused in the audit log")
	}
	if n := testutil.ToFloat64(r.intake.metrics.jobsReceived.WithLabelValues("refused", string(api.ReasonUnsupportedMediaType))); n != 1 {
		t.Errorf("refusals counted: %v", n)
	}
	r.tap()
	if v := r.pages.last(); len(v.Jobs) != 0 {
		t.Fatalf("page lists %+v", v.Jobs)
	}
}

// A terminal configured for them stores such jobs; the page is told the
// document cannot be shown, and it need not be opened to sign the letter.
func TestUnrenderableDocumentAcceptedWhenAllowed(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	r.intake.allowUnrenderable = true
	id, rc := r.offer(t, withDocx)
	if rc.Status != api.ReceiptStored {
		t.Fatalf("receipt %+v, want stored", rc)
	}
	r.tap()
	v := r.pages.last()
	if len(v.Jobs) != 1 || len(v.Jobs[0].Documents) != 2 {
		t.Fatalf("page lists %+v", v.Jobs)
	}
	text, word := v.Jobs[0].Documents[0], v.Jobs[0].Documents[1]
	if !text.Renderable || word.Renderable || !word.Available || word.MediaType != docx {
		t.Fatalf("documents %+v %+v", text, word)
	}
	if err := r.flow.Sign(r.ctx, []string{id}, []byte("123456"), false); !notViewed(err, "Surat Edaran") {
		t.Fatalf("sign before opening the text: %v, want %s", err, kiosk.CodeNotViewed)
	}
	if _, _, err := r.flow.Document(r.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.flow.Sign(r.ctx, []string{id}, []byte("123456"), false); err != nil {
		t.Fatalf("sign with the Word document not opened: %v", err)
	}
	if res := r.onlyResult(t); res.Outcome != api.OutcomeSigned || len(res.Documents) != 2 {
		t.Fatalf("result %+v", res)
	}
}

// A hash-only document keeps its own rule: allowed by allow_hash_only,
// whatever its media type, and there is nothing to open.
func TestHashOnlyDocumentKeepsItsOwnRule(t *testing.T) {
	hashOnly := func(j *api.Job) {
		d := api.NewDocument("konsep", "konsep.docx", docx, []byte("PK\x03\x04 word/document.xml"))
		d.Content = nil
		j.Documents = append(j.Documents, d)
	}
	r := newFlowRig(t, device.PINPolicyOnce)
	if _, rc := r.offer(t, hashOnly); rc.Status != api.ReceiptRefused || rc.Reason != api.ReasonHashOnlyRefused {
		t.Fatalf("hash-only refused as %+v, want %s", rc, api.ReasonHashOnlyRefused)
	}
	r.intake.verifier.(*api.Verifier).AllowHashOnly = true // the flow's too: one verifier
	id, rc := r.offer(t, hashOnly)
	if rc.Status != api.ReceiptStored {
		t.Fatalf("hash-only allowed: receipt %+v, want stored", rc)
	}
	r.tap()
	if d := r.pages.last().Jobs[0].Documents[1]; d.Available || d.Renderable {
		t.Fatalf("hash-only document %+v", d)
	}
	r.read(t, id)
	if err := r.flow.Sign(r.ctx, []string{id}, []byte("123456"), false); err != nil {
		t.Fatalf("sign: %v", err)
	}
}

// Every type the page shows is accepted as it is.
func TestRenderableDocumentsAccepted(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	for _, mt := range kiosk.RenderableTypes() {
		_, rc := r.offer(t, func(j *api.Job) {
			j.Documents = []api.Document{api.NewDocument("dok", "dok", mt, []byte("isi"))}
		})
		if rc.Status != api.ReceiptStored {
			t.Errorf("%s: receipt %+v", mt, rc)
		}
	}
}

// The packaged configuration and the protocol name every type the page
// shows, so IT and integrators read the set the code has.
func TestDocsNameTheRenderableTypes(t *testing.T) {
	for _, doc := range []string{filepath.Join("..", "packaging", "tekend.toml"), filepath.Join("..", "docs", "PROTOCOL.md")} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, mt := range kiosk.RenderableTypes() {
			if !strings.Contains(string(b), mt) {
				t.Errorf("%s does not name %s", doc, mt)
			}
		}
		if !strings.Contains(string(b), string(api.ReasonUnsupportedMediaType)) {
			t.Errorf("%s does not name %s", doc, api.ReasonUnsupportedMediaType)
		}
	}
}

func TestAllowUnrenderableDocumentsConfig(t *testing.T) {
	if DefaultConfig().Signing.AllowUnrenderableDocuments {
		t.Fatal("documents the page cannot show are accepted by default")
	}
	cfg, err := ParseConfig(strings.NewReader("[signing]\nallow_unrenderable_documents = true\n"))
	if err != nil || !cfg.Signing.AllowUnrenderableDocuments {
		t.Fatalf("parse: %v %+v", err, cfg.Signing)
	}
	_, err = ParseConfig(strings.NewReader("[signing]\nallow_unrenderable_documents = \"yes\"\n"))
	if err == nil || !strings.Contains(err.Error(), "signing.allow_unrenderable_documents") {
		t.Fatalf("a string for the flag: %v, want an error naming the field", err)
	}
}
