package demo

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/ctl"
)

// jobGrace is how long a result waits for the jobs watch to book its job;
// the watch sees the envelope when the terminal does, long before an
// official signs it.
const jobGrace = 2 * time.Second

// printResult shows a result as the central side received it: each
// signature checked, as `tekenctl verify` checks it, against the document
// of the job it belongs to as that job was dispatched, and the demo CA.
// A signed result is saved under dir, the way `tekenctl results --out`
// saves it.
func printResult(ctx context.Context, out io.Writer, r *api.Result, jobs *book, trust ctl.Trust, dir string) {
	defer jobs.forget(r.JobID)
	fmt.Fprintf(out, "result: %s — %s", r.JobID, r.Outcome)
	if r.Reason != "" {
		fmt.Fprintf(out, " (%s %s)", r.Reason, r.Detail)
	}
	fmt.Fprintln(out)
	if r.Outcome != api.OutcomeSigned {
		return
	}
	docs, known := jobs.documents(ctx, r.JobID, jobGrace)
	var signer *x509.Certificate
	if c, err := x509.ParseCertificate(r.SignerCert); err == nil {
		signer = c
	}
	for _, d := range r.Documents {
		fmt.Fprintf(out, "  %s: %s signature (%d bytes): %s\n", d.ID, d.Format, len(d.Signature), check(ctx, d, docs, known, signer, trust))
	}
	if err := ctl.WriteResult(dir, r, false); err != nil {
		fmt.Fprintf(out, "  not saved: %v\n", err)
		return
	}
	for _, d := range r.Documents {
		if d.Format == api.FormatPAdES {
			fmt.Fprintf(out, "  signed PDF: %s\n", filepath.Join(dir, ctl.SignatureFileName(r.JobID, d)))
		}
	}
}

// check verifies one signed document against the job's document of the
// same id.
func check(ctx context.Context, d api.SignedDocument, docs map[string]api.Document, known bool, signer *x509.Certificate, trust ctl.Trust) string {
	if !known {
		return "not checked: its job was not seen on its way to the terminal (dispatched while the demo was not running?)"
	}
	doc, ok := docs[d.ID]
	switch {
	case !ok:
		return fmt.Sprintf("INVALID: the job has no document %q", d.ID)
	case d.SHA256 != doc.SHA256:
		return fmt.Sprintf("INVALID: the result names sha256 %s, the job's document has %s", d.SHA256, doc.SHA256)
	case doc.Content == nil:
		return "not checked: a hash-only document"
	}
	return summary(ctl.VerifyDocument(ctx, d, doc.Content, signer, trust))
}

// summary is one line for a verdict: who signed and when, or why not
// valid. For a signed PDF it speaks of the newest signature, the
// terminal's.
func summary(v ctl.Verdict) string {
	if len(v.Signatures) == 0 {
		return fmt.Sprintf("%s: %s", v.Status, v.Reason)
	}
	s := v.Signatures[len(v.Signatures)-1]
	if v.Status != ctl.StatusValid {
		why := v.Reason
		for _, sig := range v.Signatures {
			if why == "" && sig.Status != ctl.StatusValid {
				why = sig.Reason
			}
		}
		return fmt.Sprintf("%s: %s", v.Status, why)
	}
	line := fmt.Sprintf("VALID, signed by %s (NIP %s)", s.Signer, s.NIP)
	if s.SigningTime != nil {
		line += " at " + s.SigningTime.Local().Format(time.RFC3339)
	}
	if s.Level != "" {
		line += ", PAdES " + s.Level
	}
	return line
}
