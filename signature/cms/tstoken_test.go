package cms

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// opensslTSA issues RFC 3161 tokens with `openssl ts -reply`, under the
// intermediate CA of pki, naming its certificate with ESS
// signing-certificate (essAlg sha1) or signing-certificate-v2 (sha256).
type opensslTSA struct {
	openssl, dir, conf string
	cert               *x509.Certificate
}

func newOpenSSLTSA(t testing.TB, pki *testPKI, essAlg string) *opensslTSA {
	t.Helper()
	tsa := &opensslTSA{openssl: testenv.LookPath(t, "openssl"), dir: t.TempDir()}
	key := newKey(t, "p256")
	now := time.Now()
	tsa.cert = createCert(t, &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: "Teken Test TSA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(12 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtraExtensions: []pkix.Extension{testenv.TSAExtension(t)},
	}, pki.inter, key.Public(), pki.interKey)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	file := func(name string, b []byte) string {
		p := filepath.Join(tsa.dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certPath := file("tsa.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tsa.cert.Raw}))
	chain := file("chain.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pki.inter.Raw}))
	keyPath := file("tsa.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	tsa.conf = file("ts.cnf", fmt.Appendf(nil, `[ tsa ]
default_tsa = tsa1
[ tsa1 ]
serial = %s
crypto_device = builtin
signer_cert = %s
certs = %s
signer_key = %s
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 3
ess_cert_id_alg = %s
`, file("serial", []byte("01\n")), certPath, chain, keyPath, essAlg))
	return tsa
}

// stamp returns the DER token over message, hashed with SHA-256.
func (tsa *opensslTSA) stamp(t testing.TB, message []byte) []byte {
	t.Helper()
	data, query, token := filepath.Join(tsa.dir, "data"), filepath.Join(tsa.dir, "q.tsq"), filepath.Join(tsa.dir, "token.der")
	if err := os.WriteFile(data, message, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"ts", "-query", "-data", data, "-sha256", "-cert", "-out", query},
		{"ts", "-reply", "-config", tsa.conf, "-queryfile", query, "-token_out", "-out", token},
	} {
		if out, err := exec.Command(tsa.openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	b, err := os.ReadFile(token)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyTimestampToken(t *testing.T) {
	pki := newPKI(t)
	value := []byte("the signature value a signature-time-stamp stamps")
	for _, ess := range []string{"sha256", "sha1"} {
		t.Run("ess "+ess, func(t *testing.T) {
			tsa := newOpenSSLTSA(t, pki, ess)
			token := tsa.stamp(t, value)
			ts, err := VerifyTimestampToken(token, VerifyOptions{Roots: pki.roots()})
			if err != nil {
				t.Fatal(err)
			}
			if !ts.Stamps(value) || ts.Stamps(append(bytes.Clone(value), 0)) || ts.Hash != crypto.SHA256 ||
				time.Since(ts.Time).Abs() > time.Minute || !ts.Signer.Equal(tsa.cert) || len(ts.Chain) != 3 ||
				ts.Policy.String() != "1.2.3.4.1" || ts.Serial.Sign() <= 0 {
				t.Errorf("timestamp %+v", ts)
			}
			if _, err := VerifyTimestampToken(token, VerifyOptions{Roots: newPKI(t).roots()}); !errors.Is(err, ErrUntrusted) {
				t.Errorf("another CA: %v, want ErrUntrusted", err)
			}
			if _, err := ts.VerifyChain(VerifyOptions{Roots: pki.roots(), CurrentTime: time.Now().Add(48 * time.Hour)}); !errors.Is(err, ErrUntrusted) {
				t.Errorf("after the authority's expiry: %v, want ErrUntrusted", err)
			}
			// A changed genTime or signature value breaks it.
			gen := bytes.Index(token, fmt.Appendf(nil, "%d", ts.Time.Year()))
			if gen < 0 {
				t.Fatal("genTime not found in the token")
			}
			for _, at := range []int{gen + 5, len(token) - 10} {
				bad := bytes.Clone(token)
				bad[at] ^= 0x01
				if _, err := VerifyTimestampToken(bad, VerifyOptions{}); !errors.Is(err, ErrInvalid) {
					t.Errorf("byte %d changed: %v, want ErrInvalid", at, err)
				}
			}
		})
	}
}

// A signer certificate (not one for timestamping) cannot issue tokens.
func TestVerifyTimestampTokenNeedsTimeStampingUsage(t *testing.T) {
	pki := newPKI(t)
	tsa := newOpenSSLTSA(t, pki, "sha256")
	token := tsa.stamp(t, []byte("x"))
	ts, err := VerifyTimestampToken(token, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, signer := pki.issue(t, "p256", signingUsage)
	ts.Signer = signer
	if _, err := ts.VerifyChain(VerifyOptions{Roots: pki.roots()}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("chain of a certificate without timeStamping: %v", err)
	}
}

func TestSignatureTimestampsAndVerifyChain(t *testing.T) {
	pki := newPKI(t)
	tsa := newOpenSSLTSA(t, pki, "sha256")
	key, cert := pki.issue(t, "p256", signingUsage)
	doc := []byte("%PDF-1.7\nNota Dinas 800/1/2026\n")
	plain, _ := signOnce(t, doc, &countingSigner{Signer: key}, cert, SignOptions{Chain: []*x509.Certificate{pki.inter}, OmitSigningTime: true})
	if tokens, err := SignatureTimestamps(plain); err != nil || len(tokens) != 0 {
		t.Fatalf("SignatureTimestamps of an unstamped signature: %d, %v", len(tokens), err)
	}
	s, err := Verify(plain, doc, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := tsa.stamp(t, s.Signature)
	stamped, err := AddSignatureTimestamp(plain, token)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := SignatureTimestamps(stamped)
	if err != nil || len(tokens) != 1 || !bytes.Equal(tokens[0], token) {
		t.Fatalf("SignatureTimestamps: %d, %v", len(tokens), err)
	}
	if chain, err := VerifyChain(stamped, s.Signer, VerifyOptions{Roots: pki.roots()}); err != nil || len(chain) != 3 {
		t.Errorf("VerifyChain: %d, %v", len(chain), err)
	}
	if _, err := VerifyChain(stamped, s.Signer, VerifyOptions{}); !errors.Is(err, ErrUntrusted) {
		t.Errorf("VerifyChain without roots: %v", err)
	}
	if _, err := VerifyChain(stamped, s.Signer, VerifyOptions{Roots: pki.roots(), CurrentTime: time.Now().Add(-48 * time.Hour)}); !errors.Is(err, ErrUntrusted) {
		t.Errorf("VerifyChain before the certificate's validity: %v", err)
	}
	if _, err := SignatureTimestamps([]byte("not a signature")); !errors.Is(err, ErrMalformed) {
		t.Errorf("SignatureTimestamps of junk: %v", err)
	}
}

func TestGeneralizedTime(t *testing.T) {
	for in, want := range map[string]string{
		"20261126060500Z":     "2026-11-26T06:05:00Z",
		"20261126060500.5Z":   "2026-11-26T06:05:00.5Z",
		"20261126060500.125Z": "2026-11-26T06:05:00.125Z",
	} {
		got, err := generalizedTime(in)
		if err != nil || got.Format(time.RFC3339Nano) != want {
			t.Errorf("generalizedTime(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"20261126060500", "20261126060500.50Z", "20261126060500.Z", "202611260605Z", "20261126060500+0800", "2026112606050aZ"} {
		if got, err := generalizedTime(bad); err == nil {
			t.Errorf("generalizedTime(%q) = %v, want an error", bad, got)
		}
	}
}

// TestWriteTimestampSeeds regenerates the FuzzVerifyTimestampToken seeds
// with -write-seeds; otherwise it checks they are there.
func TestWriteTimestampSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzVerifyTimestampToken")
	if !*writeSeeds {
		if entries, err := os.ReadDir(dir); err != nil || len(entries) < 2 {
			t.Errorf("committed seeds in %s: %d files, %v", dir, len(entries), err)
		}
		return
	}
	pki := newPKI(t)
	for _, ess := range []string{"sha256", "sha1"} {
		token := newOpenSSLTSA(t, pki, ess).stamp(t, []byte(fuzzDoc))
		write(t, filepath.Join(dir, "openssl-ess-"+ess), fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", token))
	}
}

// FuzzVerifyTimestampToken feeds arbitrary bytes as a token found in a
// signature: refused with an error matching ErrInvalid, or accepted as a
// complete Timestamp, never a panic; and never trusted by an empty pool.
func FuzzVerifyTimestampToken(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x06, 0x01, 0x00})
	f.Add(fakeToken([]byte("x")))
	empty := x509.NewCertPool()
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := VerifyTimestampToken(b, VerifyOptions{})
		if err != nil {
			if ts != nil || !errors.Is(err, ErrInvalid) {
				t.Fatalf("VerifyTimestampToken: %v with %+v", err, ts)
			}
			return
		}
		if ts.Signer == nil || ts.Time.IsZero() || ts.Serial == nil || len(ts.HashedMessage) != ts.Hash.Size() {
			t.Fatalf("incomplete timestamp %+v", ts)
		}
		if _, err := ts.VerifyChain(VerifyOptions{Roots: empty}); err == nil {
			t.Fatal("an empty pool trusts the authority")
		}
	})
}
