package pades

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// replace swaps old for a same-length new so offsets stay right.
func replace(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	if len(old) != len(new) || !bytes.Contains(b, []byte(old)) {
		t.Fatalf("bad replacement %q → %q", old, new)
	}
	return bytes.Replace(bytes.Clone(b), []byte(old), []byte(new), 1)
}

func malformedCases(t *testing.T) map[string][]byte {
	good := testPDF(1)
	xref := bytes.LastIndex(good, []byte("xref\n"))
	selfPrev := bytes.Replace(bytes.Clone(good), []byte("/Root 1 0 R"), []byte("/Root 1 0 R /Prev "+strconv.Itoa(xref)), 1)
	return map[string][]byte{
		"empty":              {},
		"no header":          []byte("hello, this is not a letter"),
		"header only":        []byte("%PDF-1.7\n"),
		"truncated":          good[:len(good)/2],
		"startxref past end": append(bytes.Clone(good[:bytes.LastIndex(good, []byte("startxref"))]), "startxref\n999999\n%%EOF\n"...),
		"xref keyword":       replace(t, good, "xref\n0", "xreg\n0"),
		"prev loop":          selfPrev,
		"no root":            replace(t, good, "/Root 1 0 R", "/Rot 1 0 R "),
		"no pages":           replace(t, good, "/Pages 2 0 R", "/Pagez 2 0 R"),
		"page tree loop":     replace(t, good, "/Kids [4 0 R]", "/Kids [2 0 R]"),
		"wrong object":       replace(t, good, "1 0 obj", "9 0 obj"),
		"no media box":       replace(t, good, "/MediaBox [0 0 595 842]", "/MediaBoz [0 0 595 842]"),
	}
}

func TestCheckRefusesMalformed(t *testing.T) {
	p := newPKI(t)
	for name, b := range malformedCases(t) {
		t.Run(name, func(t *testing.T) {
			if err := check(b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Inspect: %v, want ErrMalformed", err)
			}
			signer, cert := p.official(t, "p256")
			if _, err := Sign(context.Background(), b, signer, cert, Options{}); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Sign: %v, want ErrMalformed", err)
			}
			if signer.calls() != 0 {
				t.Fatal("token asked to sign a malformed document")
			}
		})
	}
}

func TestCheckAccepts(t *testing.T) {
	for name, b := range map[string][]byte{
		"table":  testPDF(1),
		"stream": xrefStreamPDF(t, 3),
	} {
		t.Run(name, func(t *testing.T) {
			if err := check(b); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCheckRefusesEncrypted(t *testing.T) {
	qpdf := need(t, "qpdf", "qpdf")
	in := writeTemp(t, "in.pdf", testPDF(1))
	for _, tc := range []struct{ name, bits, user string }{
		{"aes256 empty user password", "256", ""},
		{"aes256 with password", "256", "rahasia"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "enc.pdf")
			if msg, err := run(t, qpdf, "--encrypt", tc.user, "pemilik", tc.bits, "--", in, out); err != nil {
				t.Fatalf("qpdf --encrypt: %v: %s", err, msg)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := check(b); !errors.Is(err, ErrEncrypted) {
				t.Fatalf("Inspect: %v, want ErrEncrypted", err)
			}
			p := newPKI(t)
			signer, cert := p.official(t, "p256")
			if _, err := Sign(context.Background(), b, signer, cert, Options{}); !errors.Is(err, ErrEncrypted) || signer.calls() != 0 {
				t.Fatalf("Sign: %v after %d calls, want ErrEncrypted and no call", err, signer.calls())
			}
		})
	}
}

func TestSignRefusesBadRequests(t *testing.T) {
	p := newPKI(t)
	signer, cert := p.official(t, "p256")
	other, _ := p.official(t, "p256")
	for _, tc := range []struct {
		name   string
		signer *countingSigner
		opts   Options
		is     error
	}{
		{"page out of range", signer, Options{Visible: &Appearance{Page: 2}}, ErrPage},
		{"negative page", signer, Options{Visible: &Appearance{Page: -1}}, ErrPage},
		{"key does not match certificate", other, Options{}, nil},
		{"sha1", signer, Options{Hash: 3 /* crypto.SHA1 */}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Sign(context.Background(), testPDF(1), tc.signer, cert, tc.opts)
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("Sign: %v, want %v", err, tc.is)
			}
			if tc.signer.calls() != 0 {
				t.Fatal("token asked to sign a refused request")
			}
		})
	}
}

func TestCertifiedNoChangesIsRefused(t *testing.T) {
	p := newPKI(t)
	const perms = "/Perms << /DocMDP << /Type /Sig /Reference [<< /Type /SigRef /TransformMethod /DocMDP /TransformParams << /Type /TransformParams /P %d /V /1.2 >> >>] >> >>"
	for _, tc := range []struct {
		p    int
		want error
	}{{1, ErrLocked}, {2, nil}, {3, nil}} {
		t.Run(strconv.Itoa(tc.p), func(t *testing.T) {
			b := testPDFWith(1, fmt.Sprintf(perms, tc.p), "")
			if err := check(b); !errors.Is(err, tc.want) {
				t.Fatalf("Inspect: %v, want %v", err, tc.want)
			}
			signer, cert := p.official(t, "p256")
			_, err := Sign(context.Background(), b, signer, cert, Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Sign: %v, want %v", err, tc.want)
			}
			if tc.want != nil && signer.calls() != 0 {
				t.Fatal("token asked to sign a locked document")
			}
		})
	}
}
