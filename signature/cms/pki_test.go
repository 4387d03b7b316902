package cms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testPKI is a root CA, an intermediate CA and a way to issue signer
// certificates under it, as a province's PKI would have.
type testPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
	dir               string
}

var rsaKeys sync.Map // bits → *rsa.PrivateKey; RSA generation is slow

func newKey(t testing.TB, alg string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "rsa":
		if v, ok := rsaKeys.Load(2048); ok {
			return v.(*rsa.PrivateKey)
		}
		var rk *rsa.PrivateKey
		rk, err = rsa.GenerateKey(rand.Reader, 2048)
		if err == nil {
			v, _ := rsaKeys.LoadOrStore(2048, rk)
			k = v.(*rsa.PrivateKey)
		}
	default:
		t.Fatalf("unknown key algorithm %q", alg)
	}
	if err != nil {
		t.Fatalf("generate %s key: %v", alg, err)
	}
	return k
}

var serials struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serials.Lock()
	defer serials.Unlock()
	serials.n++
	return big.NewInt(1000 + serials.n)
}

func createCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatalf("create certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return c
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), rootKey: newKey(t, "p384"), interKey: newKey(t, "p256")}
	now := time.Now()
	ca := func(cn string) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber:          nextSerial(),
			Subject:               pkix.Name{CommonName: cn, Organization: []string{"Pemerintah Provinsi Uji"}},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
	}
	rootTmpl := ca("Teken Test Root CA")
	p.root = createCert(t, rootTmpl, rootTmpl, p.rootKey.Public(), p.rootKey)
	p.inter = createCert(t, ca("Teken Test Signing CA"), p.root, p.interKey.Public(), p.rootKey)
	writePEM(t, p.caFile(), p.root.Raw)
	return p
}

func (p *testPKI) caFile() string { return filepath.Join(p.dir, "ca.pem") }

func (p *testPKI) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.root)
	return pool
}

// issue makes a signer certificate under the intermediate CA.
func (p *testPKI) issue(t testing.TB, alg string, usage x509.KeyUsage) (crypto.Signer, *x509.Certificate) {
	t.Helper()
	key := newKey(t, alg)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject: pkix.Name{
			CommonName:   "Pejabat Penandatangan " + alg,
			SerialNumber: "198001012005011001",
		},
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.Add(12 * time.Hour),
		KeyUsage:  usage,
	}
	return key, createCert(t, tmpl, p.inter, key.Public(), p.interKey)
}

func writePEM(t testing.TB, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

const signingUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
