package ctl

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
)

func signedResult(docs ...api.SignedDocument) *api.Result {
	return &api.Result{V: 1, JobID: "0b7e3c1a-1111-4222-8333-444455556666", Terminal: "kendari-setda-01",
		Outcome: api.OutcomeSigned, SignerCert: []byte{0x30}, Documents: docs, CompletedAt: time.Now().UTC()}
}

func TestPAdESFileName(t *testing.T) {
	id := "0b7e3c1a-1111-4222-8333-444455556666"
	if got := SignatureFileName(id, api.SignedDocument{ID: "surat", Format: api.FormatPAdES}); got != id+"-surat.pdf" {
		t.Errorf("pades file name %q", got)
	}
	if got := SignatureFileName(id, api.SignedDocument{ID: "surat.PDF", Format: api.FormatPAdES}); got != id+"-surat.PDF" {
		t.Errorf("pades name %q", got)
	}
	if got := SignatureFileName(id, api.SignedDocument{ID: "../../etc", Format: api.FormatPAdES}); strings.Contains(got, "/") {
		t.Errorf("a document id left the directory: %q", got)
	}
}

func TestWriteResultNeverOverwrites(t *testing.T) {
	pdf := api.SignedDocument{ID: "surat", SHA256: strings.Repeat("a", 64), Format: api.FormatPAdES, Level: api.LevelBB,
		Signature: []byte("%PDF-1.7 signed"), SignedAt: time.Now().UTC()}
	r := signedResult(pdf)
	dir := t.TempDir()
	path := filepath.Join(dir, SignatureFileName(r.JobID, pdf))

	// The same bytes again (a run stopped before the JSON) are fine.
	if err := os.WriteFile(path, pdf.Signature, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteResult(dir, r, false); err != nil {
		t.Fatalf("WriteResult over the same bytes: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ResultFileName(r))); err != nil {
		t.Fatal(err)
	}

	// Other bytes are kept, unless asked.
	other := t.TempDir()
	path = filepath.Join(other, SignatureFileName(r.JobID, pdf))
	if err := os.WriteFile(path, []byte("the operator's own file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteResult(other, r, false); !errors.Is(err, ErrExists) {
		t.Fatalf("WriteResult over another file: %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "the operator's own file" {
		t.Fatal("the file was replaced")
	}
	if _, err := os.Stat(filepath.Join(other, ResultFileName(r))); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the result JSON was written although a signature was not")
	}
	if err := WriteResult(other, r, true); err != nil {
		t.Fatalf("WriteResult with overwrite: %v", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, pdf.Signature) {
		t.Fatal("overwrite did not replace the file")
	}
	if left, _ := filepath.Glob(filepath.Join(other, "*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// A result that cannot be written is not taken (so not acknowledged), and
// the operator hears why once, however often it comes again.
func TestResultPrinterTellsOnce(t *testing.T) {
	pdf := api.SignedDocument{ID: "surat", SHA256: strings.Repeat("a", 64), Format: api.FormatPAdES, Level: api.LevelBB,
		Signature: []byte("%PDF-1.7 signed"), SignedAt: time.Now().UTC()}
	r := signedResult(pdf)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SignatureFileName(r.JobID, pdf)), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, log bytes.Buffer
	p := &ResultPrinter{W: &out, OutDir: dir, Log: &log}
	for range 3 {
		if err := p.Take(t.Context(), r); !errors.Is(err, ErrExists) {
			t.Fatalf("Take: %v, want ErrExists", err)
		}
	}
	if n := strings.Count(log.String(), "not taken"); n != 1 || !strings.Contains(log.String(), "--overwrite") {
		t.Errorf("told %d times:\n%s", n, log.String())
	}
	if out.Len() != 0 || p.Count() != 0 {
		t.Errorf("a result not written was printed: %q", out.String())
	}
	p.Overwrite = true
	if err := p.Take(t.Context(), r); err != nil || p.Count() != 1 || !strings.Contains(out.String(), r.JobID) {
		t.Fatalf("Take with overwrite: %v, %d, %q", err, p.Count(), out.String())
	}
	// Written once, a copy is a duplicate: neither written nor printed.
	before := out.Len()
	if err := p.Take(t.Context(), r); err != nil || out.Len() != before || p.Count() != 1 {
		t.Errorf("duplicate: %v, printed %q", err, out.String()[before:])
	}
}
