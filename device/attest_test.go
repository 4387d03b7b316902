package device

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"testing"
	"time"
)

// attestPKI is a Yubico-shaped attestation hierarchy made in the test: a
// root CA, a token's f9 certificate under it, and a leaf for one key.
type attestPKI struct {
	root     *x509.Certificate
	rootKey  crypto.Signer
	f9       *x509.Certificate
	f9Key    crypto.Signer
	roots    *x509.CertPool
	slotKey  crypto.Signer
	template func() *x509.Certificate // the leaf's, to change before issuing
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issueCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, by crypto.Signer) *x509.Certificate {
	t.Helper()
	if parent == nil { // self-signed
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

// yubicoExts are the leaf extensions of a YubiKey 5 NFC, serial 12345678,
// firmware 5.7.1, PIN policy always, touch never.
func yubicoExts() []pkix.Extension {
	serial, _ := asn1.Marshal(int64(12345678))
	return []pkix.Extension{
		{Id: oidFirmware, Value: []byte{5, 7, 1}},
		{Id: oidSerial, Value: serial},
		{Id: oidPolicy, Value: []byte{0x03, 0x01}},
		{Id: oidFormFactor, Value: []byte{0x01}},
	}
}

// newAttestPKI builds the hierarchy; the f9 certificate has no basic
// constraints, as on some YubiKey 4.
func newAttestPKI(t testing.TB) *attestPKI {
	t.Helper()
	p := &attestPKI{rootKey: newKey(t), f9Key: newKey(t), slotKey: newKey(t)}
	now := time.Now()
	p.root = issueCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test PIV Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, p.rootKey.Public(), p.rootKey)
	p.f9 = issueCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Yubico PIV Attestation"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
	}, p.root, p.f9Key.Public(), p.rootKey)
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.root)
	p.template = func() *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "YubiKey PIV Attestation 9c"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			ExtraExtensions: yubicoExts(),
		}
	}
	return p
}

func (p *attestPKI) leaf(t testing.TB) *x509.Certificate {
	t.Helper()
	return issueCert(t, p.template(), p.f9, p.slotKey.Public(), p.f9Key)
}

func TestVerifyAttestation(t *testing.T) {
	p := newAttestPKI(t)
	if p.f9.BasicConstraintsValid {
		t.Fatal("test f9 certificate has basic constraints; it must not")
	}
	f9Before := *p.f9
	a, err := VerifyAttestation(p.leaf(t), p.f9, p.roots)
	if err != nil {
		t.Fatal(err)
	}
	if a.Serial != 12345678 || a.Version != "5.7.1" || a.PINPolicy != PINPolicyAlways ||
		a.TouchPolicy != TouchNever || a.FormFactor != "USB-A Keychain" {
		t.Errorf("attestation = %+v", a)
	}
	pub, ok := a.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(p.slotKey.Public()) {
		t.Errorf("attested key %T is not the slot's", a.PublicKey)
	}
	if p.f9.BasicConstraintsValid != f9Before.BasicConstraintsValid || p.f9.IsCA != f9Before.IsCA {
		t.Error("VerifyAttestation changed the caller's intermediate")
	}
}

func TestVerifyAttestationRefuses(t *testing.T) {
	p := newAttestPKI(t)
	other := newAttestPKI(t)
	now := time.Now()
	notCA := issueCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "not a CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		BasicConstraintsValid: true, IsCA: false,
	}, p.root, p.f9Key.Public(), p.rootKey)
	// A second f9 under the same root: a leaf of another token.
	otherF9 := issueCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(10), Subject: pkix.Name{CommonName: "Yubico PIV Attestation"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
	}, p.root, other.f9Key.Public(), p.rootKey)
	otherLeaf := issueCert(t, p.template(), otherF9, p.slotKey.Public(), other.f9Key)
	byRoot := issueCert(t, p.template(), p.root, p.slotKey.Public(), p.rootKey)

	withExts := func(exts ...pkix.Extension) *x509.Certificate {
		tmpl := p.template()
		tmpl.ExtraExtensions = exts
		return issueCert(t, tmpl, p.f9, p.slotKey.Public(), p.f9Key)
	}
	ext := yubicoExts()

	tests := []struct {
		name     string
		leaf, f9 *x509.Certificate
		roots    *x509.CertPool
	}{
		{"other root", p.leaf(t), p.f9, other.roots},
		{"intermediate says it is not a CA", issueCert(t, p.template(), notCA, p.slotKey.Public(), p.f9Key), notCA, p.roots},
		{"leaf of another token", otherLeaf, p.f9, p.roots},
		{"leaf signed by the root itself", byRoot, p.f9, p.roots},
		{"no firmware", withExts(ext[1], ext[2], ext[3]), p.f9, p.roots},
		{"no serial", withExts(ext[0], ext[2], ext[3]), p.f9, p.roots},
		{"no policy", withExts(ext[0], ext[1], ext[3]), p.f9, p.roots},
		{"bad policy", withExts(ext[0], ext[1], pkix.Extension{Id: oidPolicy, Value: []byte{3, 9}}, ext[3]), p.f9, p.roots},
		{"no roots", p.leaf(t), p.f9, nil},
		{"no intermediate", p.leaf(t), nil, p.roots},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := VerifyAttestation(tt.leaf, tt.f9, tt.roots)
			if !errors.Is(err, ErrAttestation) {
				t.Fatalf("VerifyAttestation = %+v, %v; want ErrAttestation", a, err)
			}
		})
	}
	// Form factor is optional.
	if _, err := VerifyAttestation(withExts(ext[0], ext[1], ext[2]), p.f9, p.roots); err != nil {
		t.Errorf("without form factor: %v", err)
	}
}

func TestParseAttestationExtensions(t *testing.T) {
	der := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name   string
		serial []byte
		fw     []byte
		policy []byte
		ok     bool
	}{
		{"good", der(int64(7)), []byte{4, 3, 5}, []byte{2, 3}, true},
		{"max serial", der(int64(1<<32 - 1)), []byte{5, 0, 0}, []byte{1, 2}, true},
		{"serial over 32 bits", der(int64(1 << 32)), []byte{5, 0, 0}, []byte{1, 1}, false},
		{"negative serial", der(int64(-1)), []byte{5, 0, 0}, []byte{1, 1}, false},
		{"serial with trailing bytes", append(der(int64(7)), 0), []byte{5, 0, 0}, []byte{1, 1}, false},
		{"serial not an integer", der("7"), []byte{5, 0, 0}, []byte{1, 1}, false},
		{"serial empty", nil, []byte{5, 0, 0}, []byte{1, 1}, false},
		{"firmware short", der(int64(7)), []byte{5, 0}, []byte{1, 1}, false},
		{"firmware long", der(int64(7)), []byte{5, 0, 0, 0}, []byte{1, 1}, false},
		{"policy long", der(int64(7)), []byte{5, 0, 0}, []byte{3, 1, 0}, false},
		{"PIN policy match always (Bio)", der(int64(7)), []byte{5, 0, 0}, []byte{5, 1}, false},
		{"PIN policy zero", der(int64(7)), []byte{5, 0, 0}, []byte{0, 1}, false},
		{"touch policy zero", der(int64(7)), []byte{5, 0, 0}, []byte{3, 0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseAttestation([]pkix.Extension{
				{Id: oidSerial, Value: tt.serial}, {Id: oidFirmware, Value: tt.fw}, {Id: oidPolicy, Value: tt.policy},
			})
			if (err == nil) != tt.ok {
				t.Errorf("parseAttestation err = %v, want ok %v", err, tt.ok)
			}
		})
	}
	for _, ff := range [][]byte{nil, {1, 2}} {
		_, err := parseAttestation(append(yubicoExts()[:3], pkix.Extension{Id: oidFormFactor, Value: ff}))
		if err == nil {
			t.Errorf("form factor %x accepted", ff)
		}
	}
}

// FuzzParseAttestation feeds the four extensions arbitrary values. What
// parses must be exactly the documented encoding: encoding the result
// again gives the same bytes.
func FuzzParseAttestation(f *testing.F) {
	for _, e := range [][4][]byte{
		{{5, 7, 1}, {0x02, 0x04, 0x00, 0xbc, 0x61, 0x4e}, {3, 1}, {1}},
		{{4, 3, 5}, {0x02, 0x01, 0x07}, {2, 3}, {}},
		{{5, 4, 3}, {0x02, 0x05, 0x00, 0xff, 0xff, 0xff, 0xff}, {1, 2}, {0x83}},
	} {
		f.Add(e[0], e[1], e[2], e[3])
	}
	f.Fuzz(func(t *testing.T, fw, serial, policy, ff []byte) {
		exts := []pkix.Extension{{Id: oidFirmware, Value: fw}, {Id: oidSerial, Value: serial}, {Id: oidPolicy, Value: policy}}
		if len(ff) > 0 { // none: the extension is left out
			exts = append(exts, pkix.Extension{Id: oidFormFactor, Value: ff})
		}
		a, err := parseAttestation(exts)
		if err != nil {
			return
		}
		again, err := asn1.Marshal(int64(a.Serial))
		if err != nil || !bytes.Equal(again, serial) {
			t.Fatalf("serial %x parsed as %d, which encodes as %x", serial, a.Serial, again)
		}
		if want := fmtVersion(fw); a.Version != want {
			t.Fatalf("firmware %x parsed as %q", fw, a.Version)
		}
		if pp, tp := policyBytes(a.PINPolicy, a.TouchPolicy); pp != policy[0] || tp != policy[1] || len(policy) != 2 {
			t.Fatalf("policy %x parsed as %v, %v", policy, a.PINPolicy, a.TouchPolicy)
		}
		if len(ff) > 1 {
			t.Fatalf("form factor %x accepted", ff)
		}
	})
}

func fmtVersion(fw []byte) string {
	if len(fw) != 3 {
		return "not a version"
	}
	return fmt.Sprintf("%d.%d.%d", fw[0], fw[1], fw[2])
}

// policyBytes encodes policies as Yubico's policy extension does.
func policyBytes(pp PINPolicy, tp TouchPolicy) (byte, byte) {
	pins := map[PINPolicy]byte{PINPolicyNever: 1, PINPolicyOnce: 2, PINPolicyAlways: 3}
	touches := map[TouchPolicy]byte{TouchNever: 1, TouchAlways: 2, TouchCached: 3}
	return pins[pp], touches[tp]
}
