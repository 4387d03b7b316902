package pivsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"math/big"
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
