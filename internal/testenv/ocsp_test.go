package testenv_test

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// TestOCSPAnswersByIndex asks the responder with openssl's own client, so
// that the index and the HTTP framing are checked by another party than the
// revocation package that uses them.
func TestOCSPAnswersByIndex(t *testing.T) {
	openssl := testenv.LookPath(t, "openssl")
	root := testenv.NewRootPKI(t, "Root")
	resp := testenv.StartOCSP(t, testenv.OCSPConfig{CA: root.Cert, Key: root.Key, NextUpdate: time.Minute})
	good := root.Issue(t, "Good", testenv.IssueOptions{})
	revoked := root.Issue(t, "Revoked", testenv.IssueOptions{})
	unknown := root.Issue(t, "Unknown", testenv.IssueOptions{})
	resp.Add(good.Cert)
	resp.Add(revoked.Cert)
	resp.Revoke(revoked.Cert)

	dir := t.TempDir()
	write := func(name string, c *x509.Certificate) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := write("ca.pem", root.Cert)
	for _, tc := range []struct {
		cert *testenv.PKICert
		want string
	}{{good, "good"}, {revoked, "revoked"}, {unknown, "unknown"}} {
		leaf := write("leaf.pem", tc.cert.Cert)
		out, err := exec.CommandContext(t.Context(), openssl, "ocsp", "-issuer", ca, "-cert", leaf, "-url", resp.URL, "-CAfile", ca, "-nonce").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl ocsp: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "leaf.pem: "+tc.want) || !strings.Contains(string(out), "Response verify OK") {
			t.Errorf("%s: want %s, openssl says\n%s", tc.cert.Cert.Subject.CommonName, tc.want, out)
		}
	}
	if n := resp.Requests(); n != 3 {
		t.Errorf("Requests() = %d, want 3", n)
	}
	if l := resp.Revoked(); len(l) != 1 || l[0].SerialNumber.Cmp(revoked.Cert.SerialNumber) != 0 {
		t.Errorf("Revoked() = %v", l)
	}
}

func TestServeCRL(t *testing.T) {
	root := testenv.NewRootPKI(t, "Root")
	leaf := root.Issue(t, "Leaf", testenv.IssueOptions{})
	url := testenv.ServeCRL(t, root.Cert, root.Key, func() []x509.RevocationListEntry {
		return []x509.RevocationListEntry{{SerialNumber: leaf.Cert.SerialNumber, RevocationTime: time.Now()}}
	})
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	der, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(root.Cert); err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || !crl.NextUpdate.After(time.Now()) {
		t.Fatalf("crl lists %d, nextUpdate %v", len(crl.RevokedCertificateEntries), crl.NextUpdate)
	}
}
