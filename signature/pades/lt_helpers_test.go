package pades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"golang.org/x/crypto/ocsp"

	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/tsa"
)

// ltPKI is a CA hierarchy for B-LT: a root, an intermediate that issues
// signers, a delegated OCSP responder of the intermediate, and a
// timestamp authority under the root.
type ltPKI struct {
	root, inter, responder   *x509.Certificate
	rootKey, interKey, rKey  *ecdsa.PrivateKey
	rootPEM, chainPEM        string // root; root and intermediate
	base                     *pki   // the root as the package's test CA, for nssDB
	tsa                      *testenv.TSA
	serial                   atomic.Int64
	stamper                  *testStamper
	tsaCert                  *x509.Certificate
	crlNumber                atomic.Int64
	revocationURLUnreachable string
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (l *ltPKI) cert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(l.serial.Add(1))
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newLTPKI(t *testing.T) *ltPKI {
	t.Helper()
	l := &ltPKI{rootKey: ecKey(t), interKey: ecKey(t), rKey: ecKey(t)}
	// Nobody listens there: a verifier that goes online fails fast.
	l.revocationURLUnreachable = "http://127.0.0.1:1/"
	l.root = l.cert(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "Teken LT Root CA", Organization: []string{"Pemerintah Provinsi Uji"}},
		IsCA:    true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, &l.rootKey.PublicKey, l.rootKey)
	l.inter = l.cert(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "Teken LT Issuing CA", Organization: []string{"Pemerintah Provinsi Uji"}},
		IsCA:    true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		CRLDistributionPoints: []string{l.revocationURLUnreachable + "root.crl"},
	}, l.root, &l.interKey.PublicKey, l.rootKey)
	l.responder = l.cert(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "Teken LT OCSP Responder"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
	}, l.inter, &l.rKey.PublicKey, l.interKey)
	l.rootPEM = writePEM(t, "root.pem", "CERTIFICATE", l.root.Raw)
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: l.root.Raw}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: l.inter.Raw})...)
	l.chainPEM = writeTemp(t, "chain.pem", chain)
	l.base = &pki{caKey: l.rootKey, ca: l.root, caPEM: l.rootPEM}

	tsaKey := ecKey(t)
	l.tsaCert = l.cert(t, &x509.Certificate{
		Subject:         pkix.Name{CommonName: "Teken LT TSA"},
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{testenv.TSAExtension(t)},
	}, l.root, &tsaKey.PublicKey, l.rootKey)
	l.tsa = testenv.StartTSA(t, testenv.TSAConfig{Cert: l.tsaCert, Key: tsaKey})
	l.stamper = &testStamper{url: l.tsa.URL}
	return l
}

// signer issues an official's certificate under the intermediate, one
// that publishes its status (so a verifier needs revocation data) at a
// CRL distribution point: no AIA OCSP responder, since pdfsig would ask
// it, and with -no-ocsp it leaves the certificate unchecked.
func (l *ltPKI) signer(t *testing.T, n int) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key := ecKey(t)
	c := l.cert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: fmt.Sprintf("Pejabat %d", n), SerialNumber: "19800101200501100" + fmt.Sprint(n%10)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		CRLDistributionPoints: []string{l.revocationURLUnreachable + "inter.crl"},
	}, l.inter, &key.PublicKey, l.interKey)
	return key, c
}

func (l *ltPKI) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(l.root)
	return p
}

// ocspFor is the delegated responder's answer on cert.
func (l *ltPKI) ocspFor(t *testing.T, cert *x509.Certificate, status int, revokedAt, thisUpdate time.Time) []byte {
	t.Helper()
	der, err := ocsp.CreateResponse(l.inter, l.responder, ocsp.Response{
		Status: status, SerialNumber: cert.SerialNumber,
		ThisUpdate: thisUpdate, NextUpdate: thisUpdate.Add(time.Hour),
		RevokedAt: revokedAt, RevocationReason: ocsp.KeyCompromise,
		Certificate: l.responder,
	}, l.rKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// rootCRL is the root's CRL, on the intermediate among others.
func (l *ltPKI) rootCRL(t *testing.T, thisUpdate time.Time, revoked ...x509.RevocationListEntry) []byte {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(l.crlNumber.Add(1)), ThisUpdate: thisUpdate, NextUpdate: thisUpdate.Add(time.Hour),
		RevokedCertificateEntries: revoked,
	}, l.root, l.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// evidence is the validation data for signer, issued now.
func (l *ltPKI) evidence(t *testing.T, signer *x509.Certificate) ValidationData {
	t.Helper()
	now := time.Now()
	return ValidationData{
		Certs: [][]byte{l.inter.Raw, l.root.Raw, l.responder.Raw},
		OCSPs: [][]byte{l.ocspFor(t, signer, ocsp.Good, time.Time{}, now)},
		CRLs:  [][]byte{l.rootCRL(t, now)},
	}
}

// signBT signs pdf by a new official under the intermediate and adds the
// signature timestamp: a B-T signature, whose genTime is returned.
func (l *ltPKI) signBT(t *testing.T, pdf []byte, n int) ([]byte, *x509.Certificate) {
	t.Helper()
	key, cert := l.signer(t, n)
	res, err := Sign(context.Background(), pdf, key, cert, Options{Chain: []*x509.Certificate{l.inter}, TSA: &TSAOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := readSignature(context.Background(), res.PDF, res.contents)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := l.stamper.Stamp(context.Background(), sig.hash, sig.value)
	if err != nil {
		t.Fatal(err)
	}
	if err := sig.stamp(res.PDF, tok.DER); err != nil {
		t.Fatal(err)
	}
	return res.PDF, cert
}

// testStamper asks a testenv TSA for a token; it stands in for
// tsa.Client, checking nothing itself, since AddDocumentTimestamp checks.
type testStamper struct {
	url   string
	calls atomic.Int64
}

func (s *testStamper) Stamp(ctx context.Context, h crypto.Hash, data []byte) (*tsa.Token, error) {
	s.calls.Add(1)
	q, err := timestamp.CreateRequest(bytes.NewReader(data), &timestamp.RequestOptions{Hash: h, Certificates: true})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(q))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/timestamp-query")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("tsa: %s: %s", resp.Status, body)
	}
	ts, err := timestamp.ParseResponse(body)
	if err != nil {
		return nil, err
	}
	return &tsa.Token{DER: ts.RawToken, GenTime: ts.Time, URL: s.url}, nil
}

// stamperFunc adapts a function to Stamper.
type stamperFunc func(ctx context.Context, h crypto.Hash, data []byte) (*tsa.Token, error)

func (f stamperFunc) Stamp(ctx context.Context, h crypto.Hash, data []byte) (*tsa.Token, error) {
	return f(ctx, h, data)
}
