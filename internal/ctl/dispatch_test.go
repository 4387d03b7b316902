package ctl

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/pades"
)

func TestParseRect(t *testing.T) {
	got, err := ParseRect("350, 40,210,80.5")
	if err != nil || got != [4]float64{350, 40, 560, 120.5} {
		t.Fatalf("ParseRect: %v %v", got, err)
	}
	for _, bad := range []string{"", "1,2,3", "1,2,3,4,5", "a,2,3,4", "-1,2,3,4", "1,2,0,4", "1,2,3,-4", "NaN,1,1,1", "1,1,Inf,1"} {
		if _, err := ParseRect(bad); err == nil {
			t.Errorf("ParseRect(%q) accepted", bad)
		}
	}
}

func TestPlacement(t *testing.T) {
	v, err := Placement(0, "", "", false)
	if err != nil || v == nil || v.Page != 0 || v.Rect != nil || v.VerifyURL != "" {
		t.Errorf("no flags: %+v %v, want the terminal's default placement", v, err)
	}
	v, err = Placement(2, "10,20,100,50", "https://tte.example.go.id/v/1", false)
	if err != nil || v.Page != 2 || !slices.Equal(v.Rect, []float64{10, 20, 110, 70}) || v.VerifyURL != "https://tte.example.go.id/v/1" {
		t.Errorf("placed: %+v %v", v, err)
	}
	if v, err := Placement(0, "", "", true); err != nil || v != nil {
		t.Errorf("invisible: %+v %v", v, err)
	}
	for _, bad := range []func() (*api.Visible, error){
		func() (*api.Visible, error) { return Placement(1, "", "", true) },
		func() (*api.Visible, error) { return Placement(0, "", "https://x.example", true) },
		func() (*api.Visible, error) { return Placement(-1, "", "", false) },
		func() (*api.Visible, error) { return Placement(0, "1,2", "", false) },
	} {
		if _, err := bad(); err == nil {
			t.Error("a contradictory placement was accepted")
		}
	}
}

// signerPEM writes a signer certificate as tekenctl dispatch reads it.
func signerPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Siti Rahmawati", SerialNumber: "198703152010012003"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signer.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// testLetter is a one-page A4 PDF showing text.
func testLetter(text string) []byte { return testenv.TextPDF(text) }

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBuildPAdESJob(t *testing.T) {
	signer := signerPEM(t)
	letter := testLetter("Undangan Rapat")
	a, b := writeFile(t, "a.pdf", letter), writeFile(t, "b", letter) // b: a PDF without the extension
	vis := &api.Visible{Page: 1, Rect: []float64{340, 40, 560, 120}, VerifyURL: "https://tte.example.go.id/v/1"}
	o := DispatchOptions{Settings: Settings{Terminal: "kendari-setda-01"}, SignerCert: signer, Format: api.FormatPAdES, Visible: vis, Files: []string{a, b}}
	j, err := BuildJob(o, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range j.Documents {
		if d.Format != api.FormatPAdES || d.MediaType != "application/pdf" || d.Visible == nil || d.Visible == vis ||
			d.Visible.Page != 1 || !slices.Equal(d.Visible.Rect, vis.Rect) || d.Visible.VerifyURL != vis.VerifyURL {
			t.Errorf("document %+v", d)
		}
	}
	j.Documents[0].Visible.Rect[0] = 0
	if j.Documents[1].Visible.Rect[0] != 340 {
		t.Error("documents share one placement")
	}

	for name, tc := range map[string]struct {
		o    func(DispatchOptions) DispatchOptions
		want error
		text string
	}{
		"no such page": {func(o DispatchOptions) DispatchOptions {
			o.Visible = &api.Visible{Page: 2}
			return o
		}, pades.ErrPage, "page 2 of 1"},
		"off the page": {func(o DispatchOptions) DispatchOptions {
			o.Visible = &api.Visible{Rect: []float64{500, 700, 900, 800}}
			return o
		}, pades.ErrPlacement, "outside page 1"},
		"not a pdf": {func(o DispatchOptions) DispatchOptions {
			o.Files = []string{writeFile(t, "c.pdf", []byte("not a PDF at all"))}
			return o
		}, nil, "needs a PDF"},
		"visible for cms": {func(o DispatchOptions) DispatchOptions { o.Format = api.FormatCMS; return o }, nil, "needs format pades"},
		"bad url": {func(o DispatchOptions) DispatchOptions {
			o.Visible = &api.Visible{VerifyURL: "javascript:alert(1)"}
			return o
		}, nil, "verify_url"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := BuildJob(tc.o(o), time.Now())
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("BuildJob: %v, want %v with %q", err, tc.want, tc.text)
			}
		})
	}

	// Invisible: a pades document without a visible member.
	o.Visible = nil
	if j, err := BuildJob(o, time.Now()); err != nil || j.Documents[0].Visible != nil {
		t.Fatalf("invisible: %v", err)
	}
}

// A paraf placed by anchor, a jabatan, a certifying ttd: the job goes as
// v 2; without any of them it stays v 1.
func TestBuildJobOfVersion2(t *testing.T) {
	signer := signerPEM(t)
	a := writeFile(t, "a.pdf", testLetter("Nota Dinas"))
	o := DispatchOptions{Settings: Settings{Terminal: "kendari-setda-01"}, SignerCert: signer, Format: api.FormatPAdES,
		Visible: &api.Visible{Mark: api.MarkParaf, Initials: "SR", Anchor: &api.Anchor{Text: "^", Offset: []float64{0, -6}}}, Files: []string{a}}
	j, err := BuildJob(o, time.Now())
	if err != nil || j.V != api.VersionMarks || j.Documents[0].Visible.Anchor.Text != "^" {
		t.Fatalf("paraf: %+v, %v", j, err)
	}
	o.Visible, o.Jabatan, o.Certify = &api.Visible{Mark: api.MarkTTD}, "Kepala Dinas", true
	if j, err = BuildJob(o, time.Now()); err != nil || j.V != api.VersionMarks || j.Signer.Jabatan != "Kepala Dinas" || !j.Documents[0].Certify {
		t.Fatalf("certifying ttd: %+v, %v", j, err)
	}
	o.Visible, o.Jabatan, o.Certify = nil, "", false
	if j, err = BuildJob(o, time.Now()); err != nil || j.V != api.Version {
		t.Fatalf("plain: %+v, %v", j, err)
	}
	o.Format, o.Certify = api.FormatCMS, true
	if _, err := BuildJob(o, time.Now()); err == nil || !strings.Contains(err.Error(), "certify needs format pades") {
		t.Fatalf("certify a cms: %v", err)
	}
}
