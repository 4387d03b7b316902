package device

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math"

	"github.com/go-piv/piv-go/v2/piv"
)

// Attestation is what a token attests about a key it generated: that the
// key was made on the device, which device, and the key's policies. Read it
// only from VerifyAttestation, which checks the chain first.
//
// See https://developers.yubico.com/PIV/Introduction/PIV_attestation.html
type Attestation struct {
	// Serial is the token's serial number.
	Serial uint32
	// Version is the token's firmware, "major.minor.patch".
	Version string
	// PINPolicy is the attested key's PIN policy.
	PINPolicy PINPolicy
	// TouchPolicy is the attested key's touch policy.
	TouchPolicy TouchPolicy
	// FormFactor is the token's form factor as piv-go names it, "" when the
	// attestation does not say (older firmware leaves it out).
	FormFactor string
	// PublicKey is the attested key.
	PublicKey crypto.PublicKey
}

// ErrAttestation is wrapped by every error of VerifyAttestation: the
// attestation is not one the caller may rely on.
var ErrAttestation = errors.New("attestation not valid")

// Yubico's attestation extensions (PIV_attestation.html, "Attestation
// certificate extensions").
var (
	oidFirmware   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 3}
	oidSerial     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 7}
	oidPolicy     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 8}
	oidFormFactor = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 9}
)

// VerifyAttestation checks that leaf, a slot's attestation certificate, was
// signed by intermediate, the token's attestation certificate (slot f9),
// and that intermediate chains to roots: Yubico's PIV attestation CA for
// real tokens. It returns what leaf attests. Errors wrap ErrAttestation.
func VerifyAttestation(leaf, intermediate *x509.Certificate, roots *x509.CertPool) (*Attestation, error) {
	if leaf == nil || intermediate == nil || roots == nil {
		return nil, fmt.Errorf("verify attestation: missing certificate or roots: %w", ErrAttestation)
	}
	if err := verifyAttestationChain(leaf, intermediate, roots); err != nil {
		return nil, fmt.Errorf("verify attestation: %w: %w", ErrAttestation, err)
	}
	a, err := parseAttestation(leaf.Extensions)
	if err != nil {
		return nil, fmt.Errorf("verify attestation: %w: %w", ErrAttestation, err)
	}
	a.PublicKey = leaf.PublicKey
	return a, nil
}

// verifyAttestationChain verifies leaf → intermediate → roots as piv-go's
// piv.Verifier.Verify does (piv/key.go, v2.6.0): any extended key usage,
// since attestation certificates carry none that x509 knows, and an
// intermediate without basic constraints taken as a CA. The f9 certificate
// of some YubiKey 4 has no basic constraints at all (against RFC 5280
// §4.2.1.9), which crypto/x509 rightly refuses for an intermediate; it is
// a CA by Yubico's design. One that says it is not a CA stays refused.
// The caller's certificate is not changed: the workaround is on a copy.
func verifyAttestationChain(leaf, intermediate *x509.Certificate, roots *x509.CertPool) error {
	ca := *intermediate
	if !ca.BasicConstraintsValid {
		ca.BasicConstraintsValid, ca.IsCA = true, true
	}
	inter := x509.NewCertPool()
	inter.AddCert(&ca)
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("chain: %w", err)
	}
	// Verify would also accept leaf directly under roots; an attestation is
	// only the token's when the token's own f9 certificate signed it.
	if err := leaf.CheckSignatureFrom(&ca); err != nil {
		return fmt.Errorf("leaf not signed by the token's attestation certificate: %w", err)
	}
	return nil
}

// parseAttestation reads Yubico's extensions strictly: each must have
// exactly its documented encoding, and firmware, serial and policy must be
// there. Form factor is optional (firmware before 5.2 leaves it out).
// crypto/x509 has already refused duplicate extensions.
func parseAttestation(exts []pkix.Extension) (*Attestation, error) {
	var a Attestation
	var haveFirmware, haveSerial, havePolicy bool
	for _, e := range exts {
		var err error
		switch {
		case e.Id.Equal(oidFirmware):
			a.Version, err = parseFirmware(e.Value)
			haveFirmware = true
		case e.Id.Equal(oidSerial):
			a.Serial, err = parseSerial(e.Value)
			haveSerial = true
		case e.Id.Equal(oidPolicy):
			a.PINPolicy, a.TouchPolicy, err = parsePolicy(e.Value)
			havePolicy = true
		case e.Id.Equal(oidFormFactor):
			a.FormFactor, err = parseFormFactor(e.Value)
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case !haveFirmware:
		return nil, errors.New("no firmware version extension")
	case !haveSerial:
		return nil, errors.New("no serial number extension")
	case !havePolicy:
		return nil, errors.New("no PIN and touch policy extension")
	}
	return &a, nil
}

// parseFirmware reads the firmware extension: three bytes, major, minor,
// patch.
func parseFirmware(v []byte) (string, error) {
	if len(v) != 3 {
		return "", fmt.Errorf("firmware version: %d bytes, want 3", len(v))
	}
	return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]), nil
}

// parseSerial reads the serial extension: a DER INTEGER, non-negative and
// within 32 bits, nothing after it.
func parseSerial(v []byte) (uint32, error) {
	var n int64
	rest, err := asn1.Unmarshal(v, &n)
	switch {
	case err != nil:
		return 0, fmt.Errorf("serial number: %w", err)
	case len(rest) != 0:
		return 0, fmt.Errorf("serial number: %d bytes after the integer", len(rest))
	case n < 0 || n > math.MaxUint32:
		return 0, fmt.Errorf("serial number %d out of range", n)
	}
	return uint32(n), nil
}

// parsePolicy reads the policy extension: two bytes, PIN policy then touch
// policy, with Yubico's values (1 never, 2 once/always, 3 always/cached).
// The Bio policies (match once, match always: 4, 5) are refused: a
// fingerprint is not the PIN an official types at the terminal.
func parsePolicy(v []byte) (PINPolicy, TouchPolicy, error) {
	if len(v) != 2 {
		return 0, 0, fmt.Errorf("policy: %d bytes, want 2", len(v))
	}
	var pp PINPolicy
	switch v[0] {
	case 0x01:
		pp = PINPolicyNever
	case 0x02:
		pp = PINPolicyOnce
	case 0x03:
		pp = PINPolicyAlways
	default:
		return 0, 0, fmt.Errorf("PIN policy 0x%02x not supported", v[0])
	}
	var tp TouchPolicy
	switch v[1] {
	case 0x01:
		tp = TouchNever
	case 0x02:
		tp = TouchAlways
	case 0x03:
		tp = TouchCached
	default:
		return 0, 0, fmt.Errorf("touch policy 0x%02x not supported", v[1])
	}
	return pp, tp, nil
}

// parseFormFactor reads the form factor extension: one byte. A value
// piv-go does not know is kept as its number ("unknown(0x..)"): new
// models must not make an attestation invalid.
func parseFormFactor(v []byte) (string, error) {
	if len(v) != 1 {
		return "", fmt.Errorf("form factor: %d bytes, want 1", len(v))
	}
	if v[0] == 0 { // "unspecified" (ykman's FORM_FACTOR.UNKNOWN)
		return "", nil
	}
	return piv.Formfactor(v[0]).String(), nil
}
