package pivsim

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"math/big"
	"time"
)

// Management key algorithms (SP 800-78-4 Table 6-2 and Yubico AES keys).
const (
	alg3DES   = 0x03
	algAES128 = 0x08
	algAES192 = 0x0A
	algAES256 = 0x0C
)

func mgmtKeyLength(alg byte) int {
	switch alg {
	case alg3DES, algAES192:
		return 24
	case algAES128:
		return 16
	case algAES256:
		return 32
	}
	return 0
}

func mgmtCipher(alg byte, key []byte) (cipher.Block, error) {
	if alg == alg3DES {
		return des.NewTripleDESCipher(key)
	}
	return aes.NewCipher(key)
}

// Tags of the dynamic authentication template (SP 800-73-4 Part 2 Table 7).
const (
	tagDynAuth   = 0x7C
	tagWitness   = 0x80
	tagChallenge = 0x81
	tagResponse  = 0x82
	tagExponent  = 0x85
)

// authenticateManagement is GENERAL AUTHENTICATE with the card management
// key 9B (SP 800-73-4 Part 2 3.2.4; the witness/challenge exchange is
// Appendix A.1 "mutual authentication", and 81/82 alone is "external
// authentication" as used by yubico-piv-tool before 2.0).
func (c *Card) authenticateManagement(s *session, cmd command) ([]byte, error) {
	if cmd.p1 != c.mgmtAlg {
		s.witness, s.challenge = nil, nil
		return nil, swIncorrectP1P2
	}
	tpl, rest, err := parseTLV(cmd.data)
	if err != nil || tpl.tag != tagDynAuth || len(rest) != 0 {
		return nil, swIncorrectData
	}
	items, err := parseTLVs(tpl.value)
	if err != nil {
		return nil, swIncorrectData
	}
	block, err := mgmtCipher(c.mgmtAlg, c.mgmtKey)
	if err != nil {
		return nil, swMemoryFailure
	}
	n := block.BlockSize()
	witness, hasW := findTLV(items, tagWitness)
	chal, hasC := findTLV(items, tagChallenge)
	resp, hasR := findTLV(items, tagResponse)
	pendingW, pendingC := s.witness, s.challenge
	s.witness, s.challenge = nil, nil
	switch {
	case hasW && len(witness) == 0 && !hasC && !hasR:
		// Step 1 of mutual authentication: the card sends its witness
		// encrypted.
		s.mgmtAuthed = false
		w := make([]byte, n)
		_, _ = rand.Read(w)
		enc := make([]byte, n)
		block.Encrypt(enc, w)
		s.witness = w
		return appendTLV(nil, tagDynAuth, appendTLV(nil, tagWitness, enc)), nil
	case hasW && hasC && !hasR:
		// Step 2: the host proves the key by returning the decrypted
		// witness, and challenges the card in turn.
		if pendingW == nil || len(witness) != n || len(chal) != n {
			return nil, swIncorrectData
		}
		if subtle.ConstantTimeCompare(witness, pendingW) != 1 {
			return nil, swSecurityStatus
		}
		enc := make([]byte, n)
		block.Encrypt(enc, chal)
		s.mgmtAuthed = true
		return appendTLV(nil, tagDynAuth, appendTLV(nil, tagResponse, enc)), nil
	case hasC && len(chal) == 0 && !hasW && !hasR:
		s.mgmtAuthed = false
		ch := make([]byte, n)
		_, _ = rand.Read(ch)
		s.challenge = ch
		return appendTLV(nil, tagDynAuth, appendTLV(nil, tagChallenge, ch)), nil
	case hasR && !hasW && !hasC:
		if pendingC == nil || len(resp) != n {
			return nil, swIncorrectData
		}
		want := make([]byte, n)
		block.Encrypt(want, pendingC)
		if subtle.ConstantTimeCompare(want, resp) != 1 {
			return nil, swSecurityStatus
		}
		s.mgmtAuthed = true
		return nil, nil
	}
	return nil, swIncorrectData
}

// authenticateKey is GENERAL AUTHENTICATE with a private key slot (SP
// 800-73-4 Part 2 3.2.4, Appendix A.3 signature and A.5 key agreement):
// 7C { 82 00, 81 data } signs, 7C { 82 00, 85 point } is ECDH. The PIN
// policy is checked, an "always" verification spent, then the touch
// responder asked without holding the lock.
func (c *Card) authenticateKey(ctx context.Context, s *session, cmd command) ([]byte, error) {
	c.mu.Lock()
	k := c.keys[cmd.p2]
	c.mu.Unlock()
	if !isKeySlot(cmd.p2) {
		return nil, swIncorrectP1P2
	}
	if k == nil {
		return nil, swNotFound
	}
	if byte(k.alg) != cmd.p1 {
		return nil, swIncorrectP1P2
	}
	tpl, rest, err := parseTLV(cmd.data)
	if err != nil || tpl.tag != tagDynAuth || len(rest) != 0 {
		return nil, swIncorrectData
	}
	items, err := parseTLVs(tpl.value)
	if err != nil {
		return nil, swIncorrectData
	}
	r, hasR := findTLV(items, tagResponse)
	chal, hasC := findTLV(items, tagChallenge)
	point, hasE := findTLV(items, tagExponent)
	if !hasR || len(r) != 0 || hasC == hasE {
		return nil, swIncorrectData
	}
	if k.pin != PINPolicyNever && !s.pinVerified {
		return nil, swSecurityStatus
	}
	if k.pin == PINPolicyAlways {
		s.pinVerified = false
	}
	if err := c.touchFor(ctx, s, cmd.p2, k.touch); err != nil {
		return nil, err
	}
	var out []byte
	if hasC {
		out, err = signRaw(k, chal)
	} else {
		out, err = agree(k, point)
	}
	if err != nil {
		return nil, err
	}
	return appendTLV(nil, tagDynAuth, appendTLV(nil, tagResponse, out)), nil
}

// touchFor applies a touch policy; a cached touch lasts 15 s as on a
// YubiKey.
func (c *Card) touchFor(ctx context.Context, s *session, slot byte, p TouchPolicy) error {
	switch p {
	case TouchPolicyNever:
		return nil
	case TouchPolicyCached:
		if s.touchedUntil.After(time.Now()) {
			return nil
		}
	}
	if err := c.touch(ctx, slot); err != nil {
		return swSecurityStatus
	}
	s.touchedUntil = time.Now().Add(15 * time.Second)
	return nil
}

// signRaw signs the block the host sent: a digest for ECDSA, the padded
// block for RSA, which the card exponentiates without looking at the
// padding, as SP 800-73-4 Part 2 A.3 specifies for RSA.
func signRaw(k *slotKey, in []byte) ([]byte, error) {
	switch key := k.signer.(type) {
	case *ecdsa.PrivateKey:
		size := (key.Curve.Params().BitSize + 7) / 8
		if len(in) == 0 || len(in) > size {
			return nil, swIncorrectData
		}
		sig, err := ecdsa.SignASN1(rand.Reader, key, in)
		if err != nil {
			return nil, swMemoryFailure
		}
		return sig, nil
	case ed25519.PrivateKey:
		// Ed25519 signs the message itself (Yubico's PIV Ed25519, 5.7).
		if len(in) == 0 {
			return nil, swIncorrectData
		}
		return ed25519.Sign(key, in), nil
	case *rsa.PrivateKey:
		size := key.Size()
		if len(in) != size {
			return nil, swIncorrectData
		}
		m := new(big.Int).SetBytes(in)
		if m.Cmp(key.N) >= 0 {
			return nil, swIncorrectData
		}
		// A simulator has no side channel to protect, so plain modular
		// exponentiation stands in for the card's RSA engine; the check
		// against the public exponent catches a broken key.
		sig := new(big.Int).Exp(m, key.D, key.N)
		if new(big.Int).Exp(sig, big.NewInt(int64(key.E)), key.N).Cmp(m) != 0 {
			return nil, swMemoryFailure
		}
		return sig.FillBytes(make([]byte, size)), nil
	}
	return nil, swIncorrectData
}

// agree is ECDH (SP 800-73-4 Part 2 A.5): the peer's uncompressed point in,
// the shared X coordinate out.
func agree(k *slotKey, point []byte) ([]byte, error) {
	key, ok := k.signer.(*ecdsa.PrivateKey)
	if !ok {
		return nil, swIncorrectData
	}
	priv, err := key.ECDH()
	if err != nil {
		return nil, swIncorrectData
	}
	peer, err := priv.Curve().NewPublicKey(point)
	if err != nil {
		return nil, swIncorrectData
	}
	secret, err := priv.ECDH(peer)
	if err != nil {
		return nil, swIncorrectData
	}
	return secret, nil
}

// publicTLV encodes a public key as in GENERATE ASYMMETRIC KEY PAIR (SP
// 800-73-4 Part 2 Table 11): 86 point for EC, 81 modulus 82 exponent for
// RSA.
func publicTLV(pub any) []byte {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		e, err := p.ECDH()
		if err != nil {
			return nil
		}
		return appendTLV(nil, 0x86, e.Bytes())
	case ed25519.PublicKey:
		return appendTLV(nil, 0x86, p)
	case *rsa.PublicKey:
		out := appendTLV(nil, 0x81, p.N.Bytes())
		return appendTLV(out, 0x82, big.NewInt(int64(p.E)).Bytes())
	}
	return nil
}

// keyPolicies reads the optional PIN (AA) and touch (AB) policy objects of
// GENERATE and IMPORT KEY (Yubico extension).
func keyPolicies(slot byte, items []tlv) (PINPolicy, TouchPolicy, error) {
	pin, touch := PINPolicyDefault, TouchPolicyDefault
	if v, ok := findTLV(items, 0xAA); ok {
		if len(v) != 1 {
			return 0, 0, swIncorrectData
		}
		pin = PINPolicy(v[0])
	}
	if v, ok := findTLV(items, 0xAB); ok {
		if len(v) != 1 {
			return 0, 0, swIncorrectData
		}
		touch = TouchPolicy(v[0])
	}
	return resolvePolicies(slot, pin, touch)
}

// generate is GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 Part 2 3.3.2):
// data AC { 80 alg [AA pin policy] [AB touch policy] }, answer 7F49 with
// the public key. It needs the management key.
func (c *Card) generate(s *session, cmd command) ([]byte, error) {
	if cmd.p1 != 0 || !isKeySlot(cmd.p2) {
		return nil, swIncorrectP1P2
	}
	if !s.mgmtAuthed {
		return nil, swSecurityStatus
	}
	tpl, rest, err := parseTLV(cmd.data)
	if err != nil || tpl.tag != 0xAC || len(rest) != 0 {
		return nil, swIncorrectData
	}
	items, err := parseTLVs(tpl.value)
	if err != nil {
		return nil, swIncorrectData
	}
	a, ok := findTLV(items, 0x80)
	if !ok || len(a) != 1 {
		return nil, swIncorrectData
	}
	pin, touch, err := keyPolicies(cmd.p2, items)
	if err != nil {
		return nil, err
	}
	if !c.supports(Algorithm(a[0])) {
		return nil, swIncorrectData
	}
	signer, err := newSigner(Algorithm(a[0]))
	if err != nil {
		return nil, swIncorrectData
	}
	c.keys[cmd.p2] = &slotKey{alg: Algorithm(a[0]), pin: pin, touch: touch, signer: signer}
	if err := c.persistLocked(); err != nil {
		return nil, swMemoryFailure
	}
	return appendTLV(nil, 0x7F49, publicTLV(signer.Public())), nil
}

// setManagementKey is the Yubico SET MANAGEMENT KEY (INS FF): P1 FF, P2 FF
// (or FE for touch), data alg 9B length key.
func (c *Card) setManagementKey(s *session, cmd command) ([]byte, error) {
	if cmd.p1 != 0xFF || (cmd.p2 != 0xFF && cmd.p2 != 0xFE) {
		return nil, swIncorrectP1P2
	}
	if !s.mgmtAuthed {
		return nil, swSecurityStatus
	}
	d := cmd.data
	if len(d) < 3 || d[1] != slotManagement || int(d[2]) != len(d)-3 || mgmtKeyLength(d[0]) != len(d)-3 {
		return nil, swIncorrectData
	}
	if _, err := mgmtCipher(d[0], d[3:]); err != nil {
		return nil, swIncorrectData
	}
	c.mgmtAlg, c.mgmtKey = d[0], bytes.Clone(d[3:])
	if err := c.persistLocked(); err != nil {
		return nil, swMemoryFailure
	}
	return nil, nil
}
