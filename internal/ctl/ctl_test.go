package ctl

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
)

func TestMediaType(t *testing.T) {
	for in, want := range map[string]string{
		"surat.pdf": "application/pdf", "SURAT.PDF": "application/pdf",
		"noext": "application/octet-stream", "x.unknownext": "application/octet-stream", "d/e.png": "image/png",
	} {
		if got := MediaType(in); got != want {
			t.Errorf("MediaType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDocumentID(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range []struct{ in, want string }{
		{"/tmp/surat.pdf", "surat.pdf"},
		{"other/surat.pdf", "surat.pdf-2"},
		{"Nota Dinas (final).pdf", "Nota_Dinas_final_.pdf"},
		{"..hidden", "hidden"},
		{"...", "doc"},
		{strings.Repeat("a", 80) + ".pdf", strings.Repeat("a", 60)},
	} {
		got := DocumentID(tc.in, seen)
		if got != tc.want {
			t.Errorf("DocumentID(%q) = %q, want %q", tc.in, got, tc.want)
		}
		j := api.Job{V: 1, JobID: api.NewJobID(), Terminal: "t", Title: "x", Number: "1", Sender: "s",
			IssuedAt: time.Now().UTC(), ExpiresAt: time.Now().UTC().Add(time.Hour),
			Signer:    api.Signatory{CertSHA256: strings.Repeat("a", 64)},
			Documents: []api.Document{api.NewDocument(got, "n", "application/pdf", []byte("x"))}}
		if err := j.Validate(); err != nil {
			t.Errorf("id %q is not valid: %v", got, err)
		}
	}
}

func TestFileNames(t *testing.T) {
	id := "0b7e3c1a-1111-4222-8333-444455556666"
	if got := SignatureFileName(id, api.SignedDocument{ID: "surat.pdf", Format: api.FormatCMS}); got != id+"-surat.pdf.p7s" {
		t.Errorf("cms name %q", got)
	}
	if got := SignatureFileName(id, api.SignedDocument{ID: "surat.pdf", Format: api.FormatRaw}); got != id+"-surat.pdf.sig" {
		t.Errorf("raw name %q", got)
	}
	if got := ResultFileName(&api.Result{JobID: id}); got != id+".json" {
		t.Errorf("result name %q", got)
	}
}

func TestSince(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{30 * time.Second, "(30s ago)"}, {5 * time.Minute, "(5m ago)"}, {3*time.Hour + 7*time.Minute, "(3h07m ago)"},
		{72 * time.Hour, "(3d ago)"}, {-time.Minute, "(in the future)"},
	} {
		if got := Since(now.Add(-tc.d), now); !strings.HasSuffix(got, tc.want) {
			t.Errorf("Since(-%s) = %q, want suffix %q", tc.d, got, tc.want)
		}
	}
	if got := Since(time.Time{}, now); got != "-" {
		t.Errorf("zero time: %q", got)
	}
}

func TestReaderName(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:35963": "Virtual PCD 00 00", "127.0.0.1:35964": "Virtual PCD 00 01",
		"127.0.0.1:40000": "the vpcd reader on port 40000", "nonsense": "unknown reader",
	} {
		if got := ReaderName(in); got != want {
			t.Errorf("ReaderName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteFleetTable(t *testing.T) {
	now := time.Now()
	var b bytes.Buffer
	err := WriteFleetTable(&b, []api.Status{
		{Terminal: "a-01", State: api.StateOnline, Version: "1.2.0", TokenPresent: true, JobsWaiting: 3, Since: now.Add(-time.Minute)},
		{Terminal: "b-02", State: api.StateOffline, Version: "1.1.0", ResultsUndelivered: 2, LastError: "pcscd down", Since: now.Add(-2 * time.Hour)},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TERMINAL") {
		t.Fatalf("table:\n%s", b.String())
	}
	for i, want := range [][]string{{"a-01", "online", "(1m ago)", "1.2.0", "yes", "3", "0", "-"}, {"b-02", "offline", "(2h00m ago)", "1.1.0", "-", "0", "2", "pcscd down"}} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d %q lacks %q", i, lines[i+1], w)
			}
		}
	}
	b.Reset()
	_ = WriteFleetTable(&b, nil, now)
	if !strings.Contains(b.String(), "no terminal") {
		t.Errorf("empty fleet:\n%s", b.String())
	}
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"ES256", "Ed25519", "eddsa", ""} {
		prefix := filepath.Join(dir, "k"+alg)
		kp, err := Keygen(alg, prefix)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		s, err := LoadDispatcherKey(kp.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		if s.KID() != kp.KID {
			t.Errorf("%s: kid %q, signer says %q", alg, kp.KID, s.KID())
		}
		if fi, _ := os.Stat(kp.KeyFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: key mode %v", alg, fi.Mode().Perm())
		}
	}
	if _, err := Keygen("ES256", filepath.Join(dir, "kES256")); err == nil {
		t.Error("overwrote a key")
	}
}

func TestVerifyResultRefusesUnsigned(t *testing.T) {
	_, err := VerifyResult(t.Context(), &api.Result{JobID: "x", Outcome: api.OutcomeRejected}, []string{"a"}, Trust{Roots: x509.NewCertPool()})
	if err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Fatalf("err %v", err)
	}
}

func FuzzReadResult(f *testing.F) {
	f.Add([]byte(`{"v":1,"job_id":"0b7e3c1a-1111-4222-8333-444455556666","terminal":"t-1","outcome":"signed","signer_cert":"AAAA","documents":[{"id":"a","sha256":"` + strings.Repeat("0", 64) + `","format":"raw","signature":"AA==","signed_at":"2026-01-01T00:00:00Z"}],"completed_at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"v":1}`))
	doc := filepath.Join(f.TempDir(), "doc")
	if err := os.WriteFile(doc, nil, 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := ReadResult(raw)
		if err != nil {
			return
		}
		vs, err := VerifyResult(t.Context(), r, []string{doc}, Trust{Roots: x509.NewCertPool()})
		if err != nil {
			return
		}
		for _, v := range vs {
			if v.Valid() {
				t.Fatalf("a signature verified against an empty CA pool: %+v", v)
			}
		}
	})
}
