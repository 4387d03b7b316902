package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
)

// terminalFiles are the files of an enrolled terminal, all good, in a
// directory of the test.
type terminalFiles struct {
	dir                                 string
	dispatcherPub, dispatcherKey        string
	signerCA, brokerCA                  string
	clientCert, clientKey, otherKey     string
	password, webConfig, expiredCA      string
	expiredClientCert, expiredClientKey string
}

func newTerminalFiles(t *testing.T) *terminalFiles {
	t.Helper()
	dir := t.TempDir()
	f := &terminalFiles{dir: dir}
	path := func(name string) string { return filepath.Join(dir, name) }

	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := api.MarshalPublicKeyPEM(key.Public())
	priv, _ := api.MarshalPrivateKeyPEM(key)
	f.dispatcherPub, f.dispatcherKey = path("dispatcher.pub"), path("dispatcher.key")
	writeFile(t, f.dispatcherPub, pub)
	writeFile(t, f.dispatcherKey, priv)

	now := time.Now()
	signerCA, _ := makeCert(t, "Signer CA", nil, nil, now.Add(-time.Hour), now.Add(24*time.Hour))
	f.signerCA = path("signer-ca.pem")
	writeFile(t, f.signerCA, certPEM(signerCA))
	brokerCA, brokerCAKey := makeCert(t, "Broker CA", nil, nil, now.Add(-time.Hour), now.Add(24*time.Hour))
	f.brokerCA = path("broker-ca.pem")
	writeFile(t, f.brokerCA, certPEM(brokerCA))
	client, clientKey := makeCert(t, "sultra-test-01", brokerCA, brokerCAKey, now.Add(-time.Hour), now.Add(24*time.Hour))
	f.clientCert, f.clientKey = path("terminal.pem"), path("terminal-key.pem")
	writeFile(t, f.clientCert, certPEM(client))
	writeFile(t, f.clientKey, keyPEM(t, clientKey))
	_, other := makeCert(t, "someone else", brokerCA, brokerCAKey, now.Add(-time.Hour), now.Add(24*time.Hour))
	f.otherKey = path("other-key.pem")
	writeFile(t, f.otherKey, keyPEM(t, other))

	expiredCA, _ := makeCert(t, "Old CA", nil, nil, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	f.expiredCA = path("old-ca.pem")
	writeFile(t, f.expiredCA, certPEM(expiredCA))
	expiredClient, expiredClientKey := makeCert(t, "old terminal", brokerCA, brokerCAKey, now.Add(-48*time.Hour), now.Add(-time.Minute))
	f.expiredClientCert, f.expiredClientKey = path("old-terminal.pem"), path("old-terminal-key.pem")
	writeFile(t, f.expiredClientCert, certPEM(expiredClient))
	writeFile(t, f.expiredClientKey, keyPEM(t, expiredClientKey))

	f.password = path("broker-password")
	writeFile(t, f.password, []byte("s3cret\n"))
	f.webConfig = path("web.yml")
	writeFile(t, f.webConfig, []byte("tls_server_config:\n  cert_file: "+f.clientCert+"\n  key_file: "+f.clientKey+"\n"))
	return f
}

// config is a terminal's configuration that passes the check: TLS broker
// with a client certificate and a password, signer CAs, a web config.
func (f *terminalFiles) config(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.TerminalID = "sultra-test-01"
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Broker.URLs = []string{"ssl://mqtt.sultraprov.go.id:8883"}
	cfg.Broker.CAFile, cfg.Broker.CertFile, cfg.Broker.KeyFile = f.brokerCA, f.clientCert, f.clientKey
	cfg.Broker.Username, cfg.Broker.PasswordFile = "sultra-test-01", f.password
	cfg.Dispatcher.KeyFiles = []string{f.dispatcherPub}
	cfg.Signing.SignerCAFiles = []string{f.signerCA}
	cfg.Metrics.WebConfig = f.webConfig
	cfg.Kiosk.Listen, cfg.Metrics.Listen = "127.0.0.1:0", "127.0.0.1:0"
	return cfg
}

// file writes content under the test's directory and returns its path.
func (f *terminalFiles) file(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	writeFile(t, p, []byte(content))
	return p
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// makeCert issues a certificate from parent (self-signed, a CA, when
// parent is nil).
func makeCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, from, until time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: from, NotAfter: until}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustReadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(mustRead(t, path)))
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// FuzzKeyAndCertificateFiles feeds the parsers of the PEM files a
// configuration names: whatever the bytes, no panic, and what they accept
// is what tekend can use.
func FuzzKeyAndCertificateFiles(f *testing.F) {
	key, _ := api.GenerateKey(api.AlgEdDSA)
	pub, _ := api.MarshalPublicKeyPEM(key.Public())
	priv, _ := api.MarshalPrivateKeyPEM(key)
	ca, _ := makeCertF(f)
	for _, seed := range [][]byte{pub, priv, certPEM(ca), append(certPEM(ca), priv...), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), nil} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, private := privateKeyBlock(raw)
		keys, err := parsePublicKeys("f", raw)
		switch {
		case err == nil && private:
			t.Fatal("a file with a private key accepted as public keys")
		case err == nil && len(keys) == 0:
			t.Fatal("no key and no error")
		case private && !strings.Contains(err.Error(), "holds a private key"):
			t.Fatalf("private key refused as %v", err)
		}
		for _, k := range keys {
			if _, err := api.Algorithm(k); err != nil {
				t.Fatalf("accepted a key tekend cannot verify with: %v", err)
			}
		}
		certs, err := parseCertificates("f", raw)
		if err == nil && (len(certs) == 0 || private) {
			t.Fatalf("accepted %d certificates from a file with a private key: %v", len(certs), private)
		}
	})
}

// makeCertF is makeCert for a fuzz target's seeds.
func makeCertF(f *testing.F) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "seed CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		f.Fatal(err)
	}
	return c, key
}
