package device

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"github.com/go-piv/piv-go/v2/piv"
)

// The key operations of Admin: generation on the device, attestation, the
// CSR signer and the certificate import.

// KeyAlgorithm is the kind of key GenerateKey makes on the token.
type KeyAlgorithm int

// Key algorithms a token can generate.
const (
	// AlgorithmP256 is ECDSA on NIST P-256, the default.
	AlgorithmP256 KeyAlgorithm = iota + 1
	// AlgorithmP384 is ECDSA on NIST P-384.
	AlgorithmP384
	// AlgorithmRSA2048 is RSA with a 2048-bit modulus.
	AlgorithmRSA2048
	// AlgorithmEd25519 is Ed25519 (YubiKey firmware 5.7 and later).
	AlgorithmEd25519
)

// TouchPolicy says when a slot's key needs the token to be touched.
type TouchPolicy int

// Touch policies.
const (
	// TouchNever means the key signs without a touch.
	TouchNever TouchPolicy = iota + 1
	// TouchAlways means every signature needs a touch.
	TouchAlways
	// TouchCached means a touch is good for 15 seconds.
	TouchCached
)

func (a KeyAlgorithm) piv(v piv.Version) (piv.Algorithm, error) {
	switch a {
	case AlgorithmP256:
		return piv.AlgorithmEC256, nil
	case AlgorithmP384:
		return piv.AlgorithmEC384, nil
	case AlgorithmRSA2048:
		return piv.AlgorithmRSA2048, nil
	case AlgorithmEd25519:
		// YubiKey firmware 5.7 added Ed25519 (algorithm E0) to PIV.
		if !atLeast(v, 5, 7) {
			return 0, fmt.Errorf("ed25519 needs firmware 5.7, token has %d.%d.%d: %w", v.Major, v.Minor, v.Patch, ErrUnsupported)
		}
		return piv.AlgorithmEd25519, nil
	}
	return 0, fmt.Errorf("key algorithm %d: %w", int(a), ErrUnsupported)
}

func (p TouchPolicy) piv() (piv.TouchPolicy, error) {
	switch p {
	case TouchNever:
		return piv.TouchPolicyNever, nil
	case TouchAlways:
		return piv.TouchPolicyAlways, nil
	case TouchCached:
		return piv.TouchPolicyCached, nil
	}
	return 0, fmt.Errorf("touch policy %d: %w", int(p), ErrUnsupported)
}

func atLeast(v piv.Version, major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// GenerateKey makes a key in slot on the device with PIN policy always and
// the given touch policy, and returns its public key. It needs the PIN and
// the management key (default or PIN-protected, found as
// ProtectManagementKey does). Ed25519 needs firmware 5.7.
func (a *Admin) GenerateKey(pin []byte, slot Slot, alg KeyAlgorithm, touch TouchPolicy) (crypto.PublicKey, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.begin(); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	pub, err := a.generate(pin, slot, alg, touch)
	if err != nil {
		return nil, fmt.Errorf("generate key in slot %02x: %w", byte(slot), err)
	}
	return pub, nil
}

func (a *Admin) generate(pin []byte, slot Slot, alg KeyAlgorithm, touch TouchPolicy) (crypto.PublicKey, error) {
	ps, err := slot.piv()
	if err != nil {
		return nil, err
	}
	pa, err := alg.piv(a.yk.Version())
	if err != nil {
		return nil, err
	}
	pt, err := touch.piv()
	if err != nil {
		return nil, err
	}
	key, err := a.managementKey(pin)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	pub, err := a.yk.GenerateKey(key, ps, piv.Key{Algorithm: pa, PINPolicy: piv.PINPolicyAlways, TouchPolicy: pt})
	if err != nil {
		return nil, a.diagnose(err)
	}
	return pub, nil
}

// slotKey is the public key in slot, from the key's metadata (firmware 5.3
// and later) or else from its attestation. a.mu is held.
func (a *Admin) slotKey(ps piv.Slot) (crypto.PublicKey, error) {
	if atLeast(a.yk.Version(), 5, 3) {
		ki, err := a.yk.KeyInfo(ps)
		if err != nil {
			return nil, fmt.Errorf("read key metadata: %w", a.diagnose(err))
		}
		return ki.PublicKey, nil
	}
	cert, err := a.yk.Attest(ps)
	if err != nil {
		return nil, fmt.Errorf("read key by attestation: %w", a.diagnose(err))
	}
	return cert.PublicKey, nil
}

// Signer returns a crypto.Signer for the key in slot that verifies pin
// before each signature, as PIN policy always asks (for a CSR). It checks
// pin at once, so a wrong PIN is *PINError from Signer; a Sign whose PIN is
// refused (the PIN changed meanwhile) fails every later Sign without
// trying it again. It keeps a copy of pin, zeroed when the Admin ends, and
// fails with ErrSessionClosed after that.
func (a *Admin) Signer(slot Slot, pin []byte) (crypto.Signer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.begin(); err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	if err := checkPIN(pin); err != nil {
		return nil, fmt.Errorf("signer: pin: %w", err)
	}
	ps, err := slot.piv()
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	pub, err := a.slotKey(ps)
	if err != nil {
		return nil, fmt.Errorf("signer for slot %02x: %w", byte(slot), err)
	}
	if err := a.verifyPIN(pin); err != nil {
		return nil, fmt.Errorf("signer for slot %02x: %w", byte(slot), err)
	}
	p := bytes.Clone(pin)
	a.pins = append(a.pins, p)
	return &adminSigner{a: a, slot: ps, pub: pub, pin: p}, nil
}

// adminSigner is a crypto.Signer over one slot of an open Admin.
type adminSigner struct {
	a    *Admin
	slot piv.Slot
	pub  crypto.PublicKey
	pin  []byte
	// refused is the PIN error of an earlier Sign: a PIN is never
	// presented again after the card refused it.
	refused error
}

var _ crypto.Signer = (*adminSigner)(nil)

func (g *adminSigner) Public() crypto.PublicKey { return g.pub }

// Sign verifies the PIN and signs: digest for ECDSA and RSA (PKCS #1 v1.5,
// or PSS with *rsa.PSSOptions), the message itself for Ed25519.
func (g *adminSigner) Sign(rnd io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	a := g.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.begin(); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if g.refused != nil {
		return nil, fmt.Errorf("sign with slot %02x: pin refused before: %w", g.slot.Key, g.refused)
	}
	if err := a.verifyPIN(g.pin); err != nil {
		var pe *PINError
		if errors.As(err, &pe) {
			g.refused = err
		}
		return nil, fmt.Errorf("sign with slot %02x: %w", g.slot.Key, err)
	}
	// PINPolicyNever: the PIN was just verified, piv-go must not look for one.
	priv, err := a.yk.PrivateKey(g.slot, g.pub, piv.KeyAuth{PINPolicy: piv.PINPolicyNever})
	if err != nil {
		return nil, fmt.Errorf("sign with slot %02x: %w", g.slot.Key, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("sign with slot %02x: %w", g.slot.Key, ErrUnsupported)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	sig, err := signer.Sign(rnd, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("sign with slot %02x: %w", g.slot.Key, a.diagnose(err))
	}
	return sig, nil
}

// Attestation returns the slot's attestation certificate, made by the token
// for a key it generated, and the token's attestation intermediate (slot
// f9). Check them with VerifyAttestation. An imported key has none.
func (a *Admin) Attestation(slot Slot) (leaf, intermediate *x509.Certificate, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.begin(); err != nil {
		return nil, nil, fmt.Errorf("attestation: %w", err)
	}
	ps, err := slot.piv()
	if err != nil {
		return nil, nil, fmt.Errorf("attestation: %w", err)
	}
	leaf, err = a.yk.Attest(ps)
	if err != nil {
		return nil, nil, fmt.Errorf("attest slot %02x: %w", byte(slot), a.diagnose(err))
	}
	intermediate, err = a.yk.AttestationCertificate()
	if err != nil {
		return nil, nil, fmt.Errorf("read attestation certificate f9: %w", a.diagnose(err))
	}
	return leaf, intermediate, nil
}

// ImportCertificate writes cert into slot after checking that its public
// key is the slot's key (ErrKeyMismatch otherwise). It needs the PIN and
// the management key, found as ProtectManagementKey does.
func (a *Admin) ImportCertificate(pin []byte, slot Slot, cert *x509.Certificate) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.begin(); err != nil {
		return fmt.Errorf("import certificate: %w", err)
	}
	if err := a.importCert(pin, slot, cert); err != nil {
		return fmt.Errorf("import certificate into slot %02x: %w", byte(slot), err)
	}
	return nil
}

func (a *Admin) importCert(pin []byte, slot Slot, cert *x509.Certificate) error {
	if cert == nil {
		return errors.New("no certificate")
	}
	ps, err := slot.piv()
	if err != nil {
		return err
	}
	pub, err := a.slotKey(ps)
	if err != nil {
		return err
	}
	k, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !k.Equal(cert.PublicKey) {
		return ErrKeyMismatch
	}
	key, err := a.managementKey(pin)
	if err != nil {
		return err
	}
	defer clear(key)
	if err := a.yk.SetCertificate(key, ps, cert); err != nil {
		return a.diagnose(err)
	}
	return nil
}
