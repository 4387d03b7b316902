package testenv

import (
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
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// OCSPConfig configures StartOCSP. CA and Key are required.
type OCSPConfig struct {
	// CA is the issuer whose certificates the responder answers for, and
	// Key its private key.
	CA  *x509.Certificate
	Key crypto.Signer
	// Signer and SignerKey sign the responses when set: a delegated
	// responder (RFC 6960 §4.2.2.2), which the CA should have issued with
	// id-kp-OCSPSigning. Nil: the CA signs.
	Signer    *x509.Certificate
	SignerKey crypto.Signer
	// NextUpdate is the span to each response's nextUpdate, in whole
	// minutes rounded up (openssl's -nmin); 0 leaves nextUpdate out.
	NextUpdate time.Duration
	// Answer, when set, sees each request first; false answers 503.
	Answer func(r *http.Request) bool
}

// OCSP is an RFC 6960 responder on 127.0.0.1: `openssl ocsp -index`
// answering one request per run behind an HTTP handler (RFC 6960 appendix
// A.1, POST only). openssl's own -port server binds every interface
// ([::]:port in apps/lib/http_server.c of OpenSSL 3.0) and cannot be told
// otherwise, so it is not used: nothing here may listen beyond loopback.
// Certificates not in the index (Add, Revoke) are answered "unknown".
type OCSP struct {
	URL string

	openssl string
	dir     string
	args    []string
	cfg     OCSPConfig
	srv     *httptest.Server
	t       testing.TB // for Add and Revoke, called from the test

	mu       sync.Mutex // the index file and what it says
	entries  map[string]ocspEntry
	requests int
}

type ocspEntry struct {
	cert      *x509.Certificate
	revokedAt time.Time // zero: valid
}

// StartOCSP runs a responder for the test.
func StartOCSP(t testing.TB, cfg OCSPConfig) *OCSP {
	t.Helper()
	openssl := LookPath(t, "openssl")
	if cfg.CA == nil || cfg.Key == nil {
		t.Fatal("StartOCSP: CA and Key are required")
	}
	signer, key := cfg.CA, cfg.Key
	if cfg.Signer != nil {
		signer, key = cfg.Signer, cfg.SignerKey
	}
	dir := t.TempDir()
	o := &OCSP{openssl: openssl, dir: dir, cfg: cfg, t: t, entries: map[string]ocspEntry{}}
	caPath := filepath.Join(dir, "ca.pem")
	signerPath := filepath.Join(dir, "signer.pem")
	keyPath := filepath.Join(dir, "signer.key")
	writeFile(t, caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cfg.CA.Raw}))
	writeFile(t, signerPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signer.Raw}))
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	o.args = []string{"ocsp", "-index", filepath.Join(dir, "index.txt"), "-CA", caPath,
		"-rsigner", signerPath, "-rkey", keyPath}
	if cfg.NextUpdate > 0 {
		mins := int((cfg.NextUpdate + time.Minute - 1) / time.Minute)
		o.args = append(o.args, "-nmin", fmt.Sprint(mins))
	}
	o.mu.Lock()
	err = o.writeIndex()
	o.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.srv.Close)
	o.URL = o.srv.URL + "/ocsp"
	return o
}

func (o *OCSP) serve(w http.ResponseWriter, r *http.Request) {
	var req []byte
	switch r.Method {
	case http.MethodPost:
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil || r.Header.Get("Content-Type") != "application/ocsp-request" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		req = b
	default:
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if o.cfg.Answer != nil && !o.cfg.Answer(r) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests++
	qp, rp := filepath.Join(o.dir, "req.der"), filepath.Join(o.dir, "resp.der")
	args := append(append([]string(nil), o.args...), "-reqin", qp, "-respout", rp)
	opensslAnswer(w, r, o.openssl, req, qp, rp, args, "application/ocsp-response")
}

// Add makes the responder answer "good" for cert.
func (o *OCSP) Add(cert *x509.Certificate) { o.set(cert, time.Time{}) }

// Revoke makes the responder answer "revoked" for cert, revoked a
// second before now (openssl's index keeps whole seconds).
func (o *OCSP) Revoke(cert *x509.Certificate) {
	o.set(cert, time.Now().Add(-time.Second).UTC().Truncate(time.Second))
}

func (o *OCSP) set(cert *x509.Certificate, revokedAt time.Time) {
	o.t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.entries[indexSerial(cert.SerialNumber)] = ocspEntry{cert: cert, revokedAt: revokedAt}
	if err := o.writeIndex(); err != nil {
		o.t.Fatal(err)
	}
}

// Revoked lists the certificates Revoke marked, as CRL entries, so that a
// CRL (ServeCRL) can say the same as the responder.
func (o *OCSP) Revoked() []x509.RevocationListEntry {
	o.mu.Lock()
	defer o.mu.Unlock()
	var l []x509.RevocationListEntry
	for _, e := range o.entries {
		if !e.revokedAt.IsZero() {
			l = append(l, x509.RevocationListEntry{SerialNumber: e.cert.SerialNumber, RevocationTime: e.revokedAt})
		}
	}
	return l
}

// Requests is how many requests the responder has answered.
func (o *OCSP) Requests() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests
}

// Close stops the responder: connections to URL are refused from now on.
func (o *OCSP) Close() { o.srv.Close() }

// writeIndex writes the index in the format of openssl ca (apps/lib/apps.c,
// index.txt): status, expiry, revocation date, serial in upper-case hex,
// file name, subject, tab-separated. Callers hold o.mu.
func (o *OCSP) writeIndex() error {
	keys := make([]string, 0, len(o.entries))
	for k := range o.entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		e := o.entries[k]
		status, rev := "V", ""
		if !e.revokedAt.IsZero() {
			status, rev = "R", e.revokedAt.UTC().Format("060102150405Z")
		}
		dn := strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' {
				return ' '
			}
			return r
		}, e.cert.Subject.String())
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\tunknown\t/%s\n", status, e.cert.NotAfter.UTC().Format("060102150405Z"), rev, k, dn)
	}
	return os.WriteFile(filepath.Join(o.dir, "index.txt"), []byte(b.String()), 0o600)
}

// indexSerial is a serial as openssl looks it up: BN_bn2hex, whole bytes.
func indexSerial(n *big.Int) string {
	s := strings.ToUpper(n.Text(16))
	if len(s)%2 == 1 {
		s = "0" + s
	}
	return s
}

// ServeCRL serves on 127.0.0.1 a CRL that issuer signs with key afresh for
// each request (thisUpdate now, nextUpdate an hour on), listing what
// revoked returns then (nil: none). It returns the CRL's URL.
func ServeCRL(t testing.TB, issuer *x509.Certificate, key crypto.Signer, revoked func() []x509.RevocationListEntry) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var entries []x509.RevocationListEntry
		if revoked != nil {
			entries = revoked()
		}
		now := time.Now()
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number:                    big.NewInt(now.UnixNano()),
			ThisUpdate:                now,
			NextUpdate:                now.Add(time.Hour),
			RevokedCertificateEntries: entries,
		}, issuer, key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		_, _ = w.Write(der)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/ca.crl"
}

// PKICert is a certificate with its private key, made for signature and
// revocation tests.
type PKICert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// IssueOptions says what Issue puts into a certificate beyond its name.
type IssueOptions struct {
	IsCA        bool               // a CA (keyCertSign, cRLSign), else a signer (digitalSignature, nonRepudiation)
	OCSP        []string           // AIA id-ad-ocsp URLs
	CRL         []string           // CRL distribution points
	ExtKeyUsage []x509.ExtKeyUsage // e.g. x509.ExtKeyUsageOCSPSigning for a delegated responder
}

// NewRootPKI makes a self-signed root CA valid from an hour ago for a day.
func NewRootPKI(t testing.TB, cn string) *PKICert {
	t.Helper()
	key := newKey(t)
	tmpl := pkiTemplate(t, cn, IssueOptions{IsCA: true})
	return makePKICert(t, tmpl, tmpl, key, key)
}

// Issue makes a certificate for cn signed by c, valid from an hour ago for
// a day, with a P-256 key of its own.
func (c *PKICert) Issue(t testing.TB, cn string, o IssueOptions) *PKICert {
	t.Helper()
	return makePKICert(t, pkiTemplate(t, cn, o), c.Cert, newKey(t), c.Key)
}

func pkiTemplate(t testing.TB, cn string, o IssueOptions) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Teken test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true,
		OCSPServer:            o.OCSP,
		CRLDistributionPoints: o.CRL,
		ExtKeyUsage:           o.ExtKeyUsage,
	}
	if o.IsCA {
		tmpl.IsCA = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	}
	return tmpl
}

func makePKICert(t testing.TB, tmpl, parent *x509.Certificate, key, parentKey crypto.Signer) *PKICert {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatalf("issue certificate for %s: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &PKICert{Cert: cert, Key: key}
}

// Chain is root → intermediate → leaf with working revocation services:
// each certificate but the root names an OCSP responder of its issuer
// (AIA) and a CRL of its issuer (CDP), and both answer "good" until
// Revoke. Tests may Close a responder to send a checker to the CRL.
type Chain struct {
	Root, Intermediate, Leaf *PKICert
	// RootOCSP answers for the intermediate, IntermediateOCSP for the leaf.
	RootOCSP, IntermediateOCSP *OCSP
	// RootCRL and IntermediateCRL are the CRL URLs in the intermediate's
	// and the leaf's CDP; they list what Revoke on the OCSP beside marked.
	RootCRL, IntermediateCRL string
}

// NewChain makes a Chain whose responders sign with the CA keys and give
// nextUpdate an hour on.
func NewChain(t testing.TB) *Chain {
	t.Helper()
	c := &Chain{Root: NewRootPKI(t, "Teken Test Root")}
	c.RootOCSP = StartOCSP(t, OCSPConfig{CA: c.Root.Cert, Key: c.Root.Key, NextUpdate: time.Hour})
	c.RootCRL = ServeCRL(t, c.Root.Cert, c.Root.Key, c.RootOCSP.Revoked)
	c.Intermediate = c.Root.Issue(t, "Teken Test Intermediate", IssueOptions{IsCA: true, OCSP: []string{c.RootOCSP.URL}, CRL: []string{c.RootCRL}})
	c.RootOCSP.Add(c.Intermediate.Cert)
	c.IntermediateOCSP = StartOCSP(t, OCSPConfig{CA: c.Intermediate.Cert, Key: c.Intermediate.Key, NextUpdate: time.Hour})
	c.IntermediateCRL = ServeCRL(t, c.Intermediate.Cert, c.Intermediate.Key, c.IntermediateOCSP.Revoked)
	c.Leaf = c.Intermediate.Issue(t, "Teken Test Signer", IssueOptions{OCSP: []string{c.IntermediateOCSP.URL}, CRL: []string{c.IntermediateCRL}})
	c.IntermediateOCSP.Add(c.Leaf.Cert)
	return c
}

// Certs is the chain leaf first, as a signature verifier builds it.
func (c *Chain) Certs() []*x509.Certificate {
	return []*x509.Certificate{c.Leaf.Cert, c.Intermediate.Cert, c.Root.Cert}
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// StartTSA starts a timestamp authority (StartTSA) whose certificate the
// chain's root issued, with the critical timeStamping usage and its status
// at the root's OCSP responder, so that its chain and revocation data are
// there for B-LT. answer is TSAConfig.Answer.
func (c *Chain) StartTSA(t testing.TB, answer func(*http.Request) bool) *TSA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := pkiTemplate(t, "Teken Test TSA", IssueOptions{OCSP: []string{c.RootOCSP.URL}})
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtraExtensions = []pkix.Extension{TSAExtension(t)}
	cert := makePKICert(t, tmpl, c.Root.Cert, key, c.Root.Key).Cert
	c.RootOCSP.Add(cert)
	return StartTSA(t, TSAConfig{Cert: cert, Key: key, Answer: answer})
}
