package pivsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"time"
)

// importKey is the Yubico IMPORT ASYMMETRIC KEY (INS FE): P1 algorithm, P2
// slot; RSA as 01 P, 02 Q, 03 dP, 04 dQ, 05 qInv, EC as 06 private scalar;
// optional AA and AB policies. It needs the management key.
func (c *Card) importKey(s *session, cmd command) ([]byte, error) {
	if !isKeySlot(cmd.p2) {
		return nil, swIncorrectP1P2
	}
	if !s.mgmtAuthed {
		return nil, swSecurityStatus
	}
	items, err := parseTLVs(cmd.data)
	if err != nil {
		return nil, swIncorrectData
	}
	pin, touch, err := keyPolicies(cmd.p2, items)
	if err != nil {
		return nil, err
	}
	var k *slotKey
	switch Algorithm(cmd.p1) {
	case AlgECCP256, AlgECCP384:
		curve := elliptic.P256()
		if Algorithm(cmd.p1) == AlgECCP384 {
			curve = elliptic.P384()
		}
		d, ok := findTLV(items, 0x06)
		if !ok || len(d) != (curve.Params().BitSize+7)/8 {
			return nil, swIncorrectData
		}
		priv, err := ecdsa.ParseRawPrivateKey(curve, d)
		if err != nil {
			return nil, swIncorrectData
		}
		k = &slotKey{alg: Algorithm(cmd.p1), signer: priv}
	case AlgRSA2048:
		priv, err := rsaFromCRT(items)
		if err != nil {
			return nil, err
		}
		k = &slotKey{alg: AlgRSA2048, signer: priv}
	default:
		return nil, swIncorrectP1P2
	}
	k.pin, k.touch, k.imported = pin, touch, true
	c.keys[cmd.p2] = k
	if err := c.persistLocked(); err != nil {
		return nil, swMemoryFailure
	}
	return nil, nil
}

// rsaFromCRT rebuilds an RSA 2048 key with exponent 65537 (the only one a
// YubiKey takes) from its primes.
func rsaFromCRT(items []tlv) (*rsa.PrivateKey, error) {
	pb, ok1 := findTLV(items, 0x01)
	qb, ok2 := findTLV(items, 0x02)
	if !ok1 || !ok2 || len(pb) != 128 || len(qb) != 128 {
		return nil, swIncorrectData
	}
	p, q := new(big.Int).SetBytes(pb), new(big.Int).SetBytes(qb)
	one := big.NewInt(1)
	if p.Cmp(one) <= 0 || q.Cmp(one) <= 0 {
		return nil, swIncorrectData
	}
	e := big.NewInt(65537)
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	d := new(big.Int).ModInverse(e, phi)
	if d == nil {
		return nil, swIncorrectData
	}
	priv := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537},
		D:         d,
		Primes:    []*big.Int{p, q},
	}
	if priv.N.BitLen() != 2048 || priv.Validate() != nil {
		return nil, swIncorrectData
	}
	priv.Precompute()
	return priv, nil
}

// Object identifiers of the Yubico attestation extensions
// (https://developers.yubico.com/PIV/Introduction/PIV_attestation.html).
var (
	oidFirmware = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 3}
	oidSerial   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 7}
	oidPolicy   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 8}
)

// attest is the Yubico ATTEST (INS F9): P1 slot; the answer is a
// certificate for the slot's generated key, signed by the card's
// attestation key in F9. Imported keys cannot be attested (6A80). The
// attestation key is made on first use; it chains to no Yubico root.
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
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(cmd.p1)),
		Subject:      pkix.Name{CommonName: "YubiKey PIV Attestation " + hexByte(cmd.p1)},
		NotBefore:    time.Unix(0, 0).UTC(),
		NotAfter:     time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC),
		ExtraExtensions: []pkix.Extension{
			{Id: oidFirmware, Value: c.version[:]},
			{Id: oidSerial, Value: serial},
			{Id: oidPolicy, Value: []byte{byte(k.pin), byte(k.touch)}},
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

// attestationKeyLocked returns the attestation key and certificate,
// making them on first use; c.mu is held.
func (c *Card) attestationKeyLocked() (*ecdsa.PrivateKey, *x509.Certificate, error) {
	if k, ok := c.keys[slotAttestation]; ok {
		if der, ok := c.objects[tagAttestationCrt]; ok {
			ts, err := parseTLVs(der)
			if err == nil {
				if raw, ok := findTLV(ts, 0x70); ok {
					if cert, err := x509.ParseCertificate(raw); err == nil {
						if priv, ok := k.signer.(*ecdsa.PrivateKey); ok {
							return priv, cert, nil
						}
					}
				}
			}
		}
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(int64(c.serial) + 1),
		Subject:               pkix.Name{CommonName: "Teken pivsim PIV Attestation"},
		NotBefore:             time.Unix(0, 0).UTC(),
		NotAfter:              time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
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
