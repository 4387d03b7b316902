package device

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
)

// ykman and yubico-piv-tool look for a PIN-protected management key only
// when the admin data object (5FFF00, "PIVMAN data") says there is one: tag
// 80 holding 81, a flags byte whose bit 02 is "management key stored,
// PIN-protected" (ykman/piv.py PivmanData, yubikey-manager 4.0.9;
// yubico-piv-tool lib/ykpiv.h ADMIN_FLAGS_1_PROTECTED_MGM). piv-go v2.6.0
// writes the protected object (5FC109) but not this one, nor any object but
// certificates, so this file writes it on a connection of its own,
// authenticating with the management key itself (SP 800-73-4 Part 2
// Appendix A.1, mutual authentication, as Yubico's firmware does it with
// 3DES or AES).

// adminFlagProtected is ADMIN_FLAGS_1_PROTECTED_MGM.
const adminFlagProtected = 0x02

// Management key algorithms of GET METADATA 9B and GENERAL AUTHENTICATE P1.
const (
	mgmAlg3DES   = 0x03
	mgmAlgAES128 = 0x08
	mgmAlgAES192 = 0x0a
	mgmAlgAES256 = 0x0c
)

var adminDataTag = []byte{0x5f, 0xff, 0x00}

// markKeyProtected sets the "PIN-protected management key" flag in the
// admin data object, keeping what else it holds but a PIN-derived key's
// salt, which a random stored key replaces (as ykman does). The caller
// holds the card lock and has no piv-go connection open.
func (a *Admin) markKeyProtected(key []byte) error {
	return a.t.retryBusy(a.ctx, func() error {
		c, err := establish()
		if err != nil {
			return classify(err, phaseConnect)
		}
		defer c.release()
		h, err := c.connectExclusive(a.reader)
		if err != nil {
			return classify(err, phaseConnect)
		}
		// Reset: the management key authenticated here must not stay so.
		defer h.disconnect(true)
		return markKeyProtectedOn(h, key)
	})
}

func markKeyProtectedOn(h apduTransmitter, key []byte) error {
	creds, err := readCredentialsOn(h)
	if err != nil {
		return err
	}
	alg := byte(mgmAlg3DES) // before 5.3 the key is 3DES
	if creds.known {
		alg = creds.mgm.algorithm
	}
	if err := authenticateManagement(h, alg, key, rand.Reader); err != nil {
		return fmt.Errorf("authenticate with the management key: %w", err)
	}
	get := append([]byte{0x00, 0xcb, 0x3f, 0xff, 0x05, 0x5c, 0x03}, adminDataTag...)
	resp, err := command(h, append(get, 0x00))
	var old []byte
	var se statusError
	switch {
	case errors.As(err, &se) && se == 0x6a82: // no admin data yet
	case err != nil:
		return fmt.Errorf("read admin data: %w", err)
	default:
		if old, err = unwrapObject(resp); err != nil {
			return fmt.Errorf("read admin data: %w", err)
		}
	}
	data, err := protectedAdminData(old)
	if err != nil {
		return fmt.Errorf("admin data: %w", err)
	}
	body := append([]byte{0x5c, 0x03}, adminDataTag...)
	body = appendTLV(body, 0x53, data)
	if len(body) > 255 {
		return fmt.Errorf("admin data of %d bytes", len(body))
	}
	put := append([]byte{0x00, 0xdb, 0x3f, 0xff, byte(len(body))}, body...)
	if _, err := command(h, put); err != nil {
		return fmt.Errorf("write admin data: %w", err)
	}
	return nil
}

// unwrapObject takes a GET DATA answer apart: one 53 object, nothing after.
func unwrapObject(resp []byte) ([]byte, error) {
	tag, v, rest, err := nextTLV(resp)
	if err != nil {
		return nil, err
	}
	if tag != 0x53 || len(rest) != 0 {
		return nil, fmt.Errorf("object tag %02x with %d bytes after it", tag, len(rest))
	}
	return v, nil
}

// protectedAdminData returns the admin data old (the contents of its 53
// object, empty when there was none) with the protected flag set and a
// salt (82) dropped. It is strict: one 80 object of TLVs, each once.
func protectedAdminData(old []byte) ([]byte, error) {
	var inner []byte
	if len(old) > 0 {
		tag, v, rest, err := nextTLV(old)
		if err != nil {
			return nil, err
		}
		if tag != 0x80 || len(rest) != 0 {
			return nil, fmt.Errorf("tag %02x with %d bytes after it, want one 80 object", tag, len(rest))
		}
		inner = v
	}
	flags := byte(0)
	var out []byte
	seen := map[byte]bool{}
	for len(inner) > 0 {
		tag, v, rest, err := nextTLV(inner)
		if err != nil {
			return nil, err
		}
		inner = rest
		if seen[tag] {
			return nil, fmt.Errorf("object %02x twice", tag)
		}
		seen[tag] = true
		switch tag {
		case 0x81:
			if len(v) != 1 {
				return nil, fmt.Errorf("flags of %d bytes", len(v))
			}
			flags = v[0]
		case 0x82:
			// The salt of a PIN-derived key, which the stored key replaces.
		default:
			out = appendTLV(out, tag, v)
		}
	}
	out = append(appendTLV(nil, 0x81, []byte{flags | adminFlagProtected}), out...)
	return appendTLV(nil, 0x80, out), nil
}

// appendTLV appends a BER-TLV object with a one-byte tag.
func appendTLV(b []byte, tag byte, v []byte) []byte {
	b = append(b, tag)
	switch n := len(v); {
	case n < 0x80:
		b = append(b, byte(n))
	case n <= 0xff:
		b = append(b, 0x81, byte(n))
	default:
		b = append(b, 0x82, byte(n>>8), byte(n))
	}
	return append(b, v...)
}

// mgmCipher is the block cipher of a management key.
func mgmCipher(alg byte, key []byte) (cipher.Block, error) {
	want := map[byte]int{mgmAlg3DES: 24, mgmAlgAES128: 16, mgmAlgAES192: 24, mgmAlgAES256: 32}[alg]
	if want == 0 || len(key) != want {
		return nil, fmt.Errorf("management key algorithm %02x with %d bytes: %w", alg, len(key), ErrUnsupported)
	}
	if alg == mgmAlg3DES {
		return des.NewTripleDESCipher(key)
	}
	return aes.NewCipher(key)
}

// authenticateManagement is mutual authentication with the management key
// (SP 800-73-4 Part 2 Appendix A.1; GENERAL AUTHENTICATE, key 9B): the card
// sends an encrypted witness, the host returns it decrypted with a
// challenge of its own, and the card proves the key by encrypting that.
func authenticateManagement(h apduTransmitter, alg byte, key []byte, rnd io.Reader) error {
	block, err := mgmCipher(alg, key)
	if err != nil {
		return err
	}
	n := block.BlockSize()
	resp, err := command(h, []byte{0x00, 0x87, alg, refManagementKey, 0x04, 0x7c, 0x02, 0x80, 0x00})
	if err != nil {
		return fmt.Errorf("request witness: %w", err)
	}
	witness, err := dynAuthObject(resp, 0x80, n)
	if err != nil {
		return fmt.Errorf("witness: %w", err)
	}
	plain := make([]byte, n)
	block.Decrypt(plain, witness)
	challenge := make([]byte, n)
	if _, err := io.ReadFull(rnd, challenge); err != nil {
		return fmt.Errorf("make challenge: %w", err)
	}
	inner := appendTLV(appendTLV(nil, 0x80, plain), 0x81, challenge)
	data := appendTLV(nil, 0x7c, inner)
	resp, err = command(h, append([]byte{0x00, 0x87, alg, refManagementKey, byte(len(data))}, data...))
	if err != nil {
		return fmt.Errorf("answer witness: %w", err)
	}
	got, err := dynAuthObject(resp, 0x82, n)
	if err != nil {
		return fmt.Errorf("card's response: %w", err)
	}
	want := make([]byte, n)
	block.Encrypt(want, challenge)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return errors.New("card's response does not match: not the key it claims")
	}
	return nil
}

// dynAuthObject reads 7C { tag n bytes } from a GENERAL AUTHENTICATE answer.
func dynAuthObject(resp []byte, tag byte, n int) ([]byte, error) {
	t, v, rest, err := nextTLV(resp)
	if err != nil {
		return nil, err
	}
	if t != 0x7c || len(rest) != 0 {
		return nil, fmt.Errorf("tag %02x, want 7c", t)
	}
	t, v, rest, err = nextTLV(v)
	if err != nil {
		return nil, err
	}
	if t != tag || len(v) != n || len(rest) != 0 {
		return nil, fmt.Errorf("object %02x of %d bytes, want %02x of %d", t, len(v), tag, n)
	}
	return bytes.Clone(v), nil
}
