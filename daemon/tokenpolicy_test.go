package daemon

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
)

// defaultsTokens is the rig's token, telling which factory credentials it
// still has.
type defaultsTokens struct {
	fakeTokens
	defaults device.Defaults
}

func (f defaultsTokens) Info(ctx context.Context, reader string) (device.Info, error) {
	info, err := f.fakeTokens.Info(ctx, reader)
	info.Defaults = f.defaults
	info.Version = "5.7.1"
	return info, err
}

// fakeAttest hands out one attestation, or err.
type fakeAttest struct {
	leaf, f9 *x509.Certificate
	err      error
	slots    []device.Slot
}

func (a *fakeAttest) Attestation(_ context.Context, _ string, slot device.Slot) (*x509.Certificate, *x509.Certificate, error) {
	a.slots = append(a.slots, slot)
	return a.leaf, a.f9, a.err
}

// lastErrors records setLastError.
type lastErrors struct {
	mu   sync.Mutex
	msgs []string
}

func (l *lastErrors) set(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, msg)
}

func (l *lastErrors) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.msgs, "\n")
}

// tapWith taps the rig's token under policy p and returns what the page
// shows, what the status's last error got and the log.
func tapWith(t *testing.T, r *flowRig, defaults device.Defaults, p tokenPolicy) (kiosk.View, string, string) {
	t.Helper()
	var logs bytes.Buffer
	var errs lastErrors
	r.flow.log = slog.New(slog.NewTextHandler(&logs, nil))
	r.flow.setLastError = errs.set
	r.flow.tokens = defaultsTokens{fakeTokens{r.card}, defaults}
	r.flow.tokenSet = p
	r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	return r.pages.last(), errs.all(), logs.String()
}

func TestTokenPolicyDefaults(t *testing.T) {
	on := tokenPolicy{rules: tokenRules{refuseDefaultPIN: true}}
	tests := []struct {
		name     string
		defaults device.Defaults
		policy   tokenPolicy
		refused  bool
		status   string // in the status's last error; "" for none
	}{
		{"default PIN", device.Defaults{Known: true, PIN: true}, on, true, "token 7 refused: PIN is still the factory default"},
		{"default PUK", device.Defaults{Known: true, PUK: true}, on, true, "token 7 refused: PUK is still the factory default"},
		{"both", device.Defaults{Known: true, PIN: true, PUK: true}, on, true, "PIN and PUK are still the factory defaults"},
		{"changed", device.Defaults{Known: true}, on, false, ""},
		{"default management key", device.Defaults{Known: true, ManagementKey: true}, on, false, "token 7: management key is still the factory default"},
		{"cannot say", device.Defaults{}, on, false, "token 7: cannot tell whether PIN and PUK are still the factory defaults (firmware 5.7.1"},
		{"policy off", device.Defaults{Known: true, PIN: true, PUK: true}, tokenPolicy{}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newFlowRig(t, device.PINPolicyAlways)
			v, status, logs := tapWith(t, r, tt.defaults, tt.policy)
			checkTokenVerdict(t, v, tt.refused)
			if tt.status == "" && status != "" || !strings.Contains(status, tt.status) {
				t.Errorf("last error %q, want %q", status, tt.status)
			}
			if tt.status != "" && !strings.Contains(logs, "level=WARN") {
				t.Errorf("no warning logged: %s", logs)
			}
			for _, secret := range []string{"123456", "12345678"} {
				if strings.Contains(status, secret) || strings.Contains(logs, secret) {
					t.Errorf("a factory credential %s is in the status or log", secret)
				}
			}
		})
	}
}

// checkTokenVerdict checks the page: refused in plain words, or a token
// that can sign.
func checkTokenVerdict(t *testing.T, v kiosk.View, refused bool) {
	t.Helper()
	if !refused {
		if !v.CanSign || v.Error != nil {
			t.Errorf("token refused: can sign %v, error %+v", v.CanSign, v.Error)
		}
		return
	}
	if v.CanSign || v.Error == nil || v.Error.Code != kiosk.CodeTokenNotSetUp {
		t.Fatalf("page can sign %v, error %+v; want %s", v.CanSign, v.Error, kiosk.CodeTokenNotSetUp)
	}
	if got := kiosk.Text("id", *v.Error); !strings.HasPrefix(got, "Token belum diaktifkan oleh TI") {
		t.Errorf("id text %q", got)
	}
	if got := kiosk.Text("en", *v.Error); !strings.HasPrefix(got, "Token not set up by IT") {
		t.Errorf("en text %q", got)
	}
}

// attestCA is an attestation hierarchy like Yubico's: root → the token's
// f9 certificate (no basic constraints, as on some YubiKey 4) → leaf.
type attestCA struct {
	root  *x509.Certificate
	roots *x509.CertPool
	f9    *x509.Certificate
	f9Key crypto.Signer
}

func newAttestCA(t *testing.T) *attestCA {
	t.Helper()
	rootKey, f9Key := ecKey(t), ecKey(t)
	now := time.Now()
	root := mustCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test PIV Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, rootKey.Public(), rootKey)
	f9 := mustCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Yubico PIV Attestation"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
	}, root, f9Key.Public(), rootKey)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &attestCA{root: root, roots: pool, f9: f9, f9Key: f9Key}
}

// leaf attests key as the 9c key of token serial with PIN policy pin
// (Yubico's byte: 1 never, 2 once, 3 always).
func (c *attestCA) leaf(t *testing.T, key crypto.PublicKey, serial int64, pin byte) *x509.Certificate {
	t.Helper()
	der, err := asn1.Marshal(serial)
	if err != nil {
		t.Fatal(err)
	}
	yubico := func(n int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, n} }
	now := time.Now()
	return mustCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "YubiKey PIV Attestation 9c"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		ExtraExtensions: []pkix.Extension{
			{Id: yubico(3), Value: []byte{5, 7, 1}}, {Id: yubico(7), Value: der},
			{Id: yubico(8), Value: []byte{pin, 1}}, {Id: yubico(9), Value: []byte{1}},
		},
	}, c.f9, key, c.f9Key)
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, by crypto.Signer) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, by)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTokenPolicyAttestation(t *testing.T) {
	ca, other := newAttestCA(t), newAttestCA(t)
	const always, once = 0x03, 0x02
	changed := device.Defaults{Known: true}
	tests := []struct {
		name   string
		attest func(key crypto.PublicKey) *fakeAttest
		roots  *x509.CertPool
		reason string // "" when accepted
	}{
		{"attested", func(k crypto.PublicKey) *fakeAttest { return &fakeAttest{leaf: ca.leaf(t, k, 7, always), f9: ca.f9} }, ca.roots, ""},
		{"missing", func(crypto.PublicKey) *fakeAttest { return &fakeAttest{err: device.ErrSlotEmpty} }, ca.roots, "no attestation for slot 9c"},
		{"wrong root", func(k crypto.PublicKey) *fakeAttest { return &fakeAttest{leaf: ca.leaf(t, k, 7, always), f9: ca.f9} }, other.roots, "attestation not valid"},
		{"wrong serial", func(k crypto.PublicKey) *fakeAttest { return &fakeAttest{leaf: ca.leaf(t, k, 8, always), f9: ca.f9} }, ca.roots, "attestation is of token 8, not of this token 7"},
		{"key mismatch", func(crypto.PublicKey) *fakeAttest {
			return &fakeAttest{leaf: ca.leaf(t, ecKey(t).Public(), 7, always), f9: ca.f9}
		}, ca.roots, "not the attested key"},
		{"PIN policy once", func(k crypto.PublicKey) *fakeAttest { return &fakeAttest{leaf: ca.leaf(t, k, 7, once), f9: ca.f9} }, ca.roots, "PIN policy is once, want always"},
		{"no roots", func(k crypto.PublicKey) *fakeAttest { return &fakeAttest{leaf: ca.leaf(t, k, 7, always), f9: ca.f9} }, nil, "no token.attestation_roots loaded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newFlowRig(t, device.PINPolicyAlways)
			a := tt.attest(r.card.key.Public())
			p := tokenPolicy{rules: tokenRules{refuseDefaultPIN: true, requireAttestation: true, roots: tt.roots}, attest: a}
			v, status, _ := tapWith(t, r, changed, p)
			checkTokenVerdict(t, v, tt.reason != "")
			if tt.reason != "" && (!strings.HasPrefix(status, "token 7 refused: ") || !strings.Contains(status, tt.reason)) {
				t.Errorf("last error %q, want %q", status, tt.reason)
			}
			if tt.reason == "" && status != "" {
				t.Errorf("last error %q for a good token", status)
			}
			if tt.roots != nil && (len(a.slots) != 1 || a.slots[0] != device.SlotSignature) {
				t.Errorf("attestation read for slots %v, want [9c]", a.slots)
			}
		})
	}
	// A default PIN is refused before the attestation is read.
	r := newFlowRig(t, device.PINPolicyAlways)
	a := &fakeAttest{err: errors.New("must not be read")}
	v, _, _ := tapWith(t, r, device.Defaults{Known: true, PIN: true},
		tokenPolicy{rules: tokenRules{refuseDefaultPIN: true, requireAttestation: true, roots: ca.roots}, attest: a})
	checkTokenVerdict(t, v, true)
	if len(a.slots) != 0 {
		t.Error("attestation read for a token with a default PIN")
	}
}

// TestTokenPolicyReload: the policy in force at each tap is the one the
// last reload left.
func TestTokenPolicyReload(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyAlways)
	live := newLiveTrust(trust{tokens: tokenRules{refuseDefaultPIN: false}})
	p := tokenPolicy{live: live}
	factory := device.Defaults{Known: true, PIN: true}
	v, _, _ := tapWith(t, r, factory, p)
	checkTokenVerdict(t, v, false)
	live.store(trust{tokens: tokenRules{refuseDefaultPIN: true}})
	r.flow.presence(r.ctx, device.Event{Kind: device.Left, Reader: "Reader 0"})
	v, _, _ = tapWith(t, r, factory, p)
	checkTokenVerdict(t, v, true)
}

func writePEM(t *testing.T, certs ...*x509.Certificate) string {
	t.Helper()
	var b bytes.Buffer
	for _, c := range certs {
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "attestation-roots.pem")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTokenConfig(t *testing.T) {
	if d := DefaultConfig().Token; !d.RefuseDefaultPIN || d.RequireAttestation || len(d.AttestationRoots) != 0 {
		t.Errorf("default [token] = %+v", d)
	}
	ca := newAttestCA(t)
	cfg := DefaultConfig()
	cfg.Token.RequireAttestation = true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "token.attestation_roots") {
		t.Errorf("require_attestation without roots: %v", err)
	}
	cfg.Token.AttestationRoots = []string{writePEM(t, ca.root)}
	roots, err := loadAttestationRoots(cfg.Token.AttestationRoots)
	if err != nil || roots == nil || !roots.Equal(ca.roots) {
		t.Errorf("loadAttestationRoots = %v, %v", roots, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadAttestationRoots([]string{bad}); err == nil || !strings.HasPrefix(err.Error(), "token.attestation_roots: ") {
		t.Errorf("bad roots file: %v", err)
	}
}
