package pivsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Attestation follows a YubiKey's (https://developers.yubico.com/PIV/Introduction/PIV_attestation.html):
// a root CA, Yubico's PIV Root CA on a real token and one of the card's own
// here, signs the card's attestation certificate in slot f9 (the
// intermediate), whose key signs one certificate per generated key with
// the extensions below. The root's key stands outside the card as Yubico's
// does: no APDU reaches it; tests read the root with AttestationRoot.

// Object identifiers of the Yubico attestation extensions.
var (
	oidFirmware   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 3}
	oidSerial     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 7}
	oidPolicy     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 8}
	oidFormFactor = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 9}
)

// attestRoot is the card's stand-in for Yubico's PIV attestation root CA.
type attestRoot struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

// AttestationRoot returns the root CA certificate the card's attestation
// chains to, the stand-in for Yubico's PIV Root CA: verify an attestation
// against a pool holding it. It is made on first use and kept with the
// card's state.
func (c *Card) AttestationRoot() (*x509.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.rootLocked()
	if err != nil {
		return nil, fmt.Errorf("pivsim: attestation root: %w", err)
	}
	return r.cert, nil
}

// rootLocked returns the attestation root, making it on first use; c.mu is
// held.
func (c *Card) rootLocked() (*attestRoot, error) {
	if c.root != nil {
		return c.root, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(int64(c.serial)),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("pivsim PIV Root CA Serial %d", c.serial)},
		NotBefore:             time.Unix(0, 0).UTC(),
		NotAfter:              time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c.root = &attestRoot{key: key, cert: cert}
	return c.root, c.persistLocked()
}

// attest is the Yubico ATTEST (INS F9): P1 slot; the answer is a
// certificate for the slot's generated key, signed by the card's
// attestation key in F9. Imported keys cannot be attested (6A80).
func (c *Card) attest(cmd command) ([]byte, error) {
	if cmd.p2 != 0 || !isKeySlot(cmd.p1) {
		return nil, swIncorrectP1P2
	}
	k := c.keys[cmd.p1]
	if k == nil || k.imported {
		return nil, swIncorrectData
	}
	ca, caCert, err := c.attestationKeyLocked()
	if err != nil {
		return nil, swMemoryFailure
	}
	serial, _ := asn1.Marshal(int64(c.serial))
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, swMemoryFailure
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "YubiKey PIV Attestation " + hexByte(cmd.p1)},
		NotBefore:    time.Unix(0, 0).UTC(),
		NotAfter:     time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC),
		ExtraExtensions: []pkix.Extension{
			{Id: oidFirmware, Value: c.version[:]},
			{Id: oidSerial, Value: serial},
			{Id: oidPolicy, Value: []byte{byte(k.pin), byte(k.touch)}},
			{Id: oidFormFactor, Value: []byte{c.formFactor}},
		},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, k.signer.Public(), ca)
	if err != nil {
		return nil, swMemoryFailure
	}
	return der, nil
}

func hexByte(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}

// attestationKeyLocked returns the attestation key and its certificate
// (the intermediate in f9), making them on first use or when the stored
// certificate is not the root's; c.mu is held.
func (c *Card) attestationKeyLocked() (*ecdsa.PrivateKey, *x509.Certificate, error) {
	root, err := c.rootLocked()
	if err != nil {
		return nil, nil, err
	}
	if priv, cert, err := c.storedAttestationKey(root); err == nil {
		return priv, cert, nil
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(int64(c.serial) + 1),
		Subject:               pkix.Name{CommonName: "pivsim PIV Attestation"},
		NotBefore:             time.Unix(0, 0).UTC(),
		NotAfter:              time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.cert, priv.Public(), root.key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	c.keys[slotAttestation] = &slotKey{alg: AlgECCP256, pin: PINPolicyNever, touch: TouchPolicyNever, signer: priv}
	v := appendTLV(nil, 0x70, der)
	v = appendTLV(v, 0x71, []byte{0})
	c.objects[tagAttestationCrt] = appendTLV(v, 0xFE, nil)
	return priv, cert, c.persistLocked()
}

// storedAttestationKey returns the f9 key and certificate when both are
// there and the certificate is the root's and the key's; c.mu is held.
func (c *Card) storedAttestationKey(root *attestRoot) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	k, ok := c.keys[slotAttestation]
	if !ok {
		return nil, nil, errors.New("no attestation key")
	}
	priv, ok := k.signer.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("attestation key not ecdsa")
	}
	obj, ok := c.objects[tagAttestationCrt]
	if !ok {
		return nil, nil, errors.New("no attestation certificate")
	}
	ts, err := parseTLVs(obj)
	if err != nil {
		return nil, nil, err
	}
	raw, ok := findTLV(ts, 0x70)
	if !ok {
		return nil, nil, errors.New("attestation object without certificate")
	}
	cert, err := x509.ParseCertificate(raw)
	if err != nil {
		return nil, nil, err
	}
	if err := cert.CheckSignatureFrom(root.cert); err != nil {
		return nil, nil, err
	}
	if !priv.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New("attestation certificate of another key")
	}
	return priv, cert, nil
}
