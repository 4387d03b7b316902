package api

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// The dispatcher key algorithms, as JWS names them (RFC 7518 §3.4, RFC 8037
// §3.1). No other algorithm is accepted.
const (
	AlgES256 = "ES256" // ECDSA on P-256 with SHA-256
	AlgEdDSA = "EdDSA" // Ed25519
)

// Algorithm returns the JWS algorithm for a dispatcher public or private key,
// or an error for any key that is neither P-256 ECDSA nor Ed25519.
func Algorithm(key any) (string, error) {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ecdsa key on %s: want P-256", k.Curve.Params().Name)
		}
		return AlgES256, nil
	case *ecdsa.PrivateKey:
		return Algorithm(&k.PublicKey)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", errors.New("ed25519 public key of wrong size")
		}
		return AlgEdDSA, nil
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return "", errors.New("ed25519 private key of wrong size")
		}
		return AlgEdDSA, nil
	}
	return "", fmt.Errorf("key type %T: want ECDSA P-256 or Ed25519", key)
}

// KeyID returns the kid of a dispatcher public key: its RFC 7638 JWK
// thumbprint (SHA-256), base64url without padding. Both sides derive the same
// kid from the same key, so no kid needs to be configured by hand.
// testdata/vectors/kid.json lists keys with their JWK and kid, P-256 keys
// with leading zero bytes among them, for checking another implementation.
func KeyID(pub crypto.PublicKey) (string, error) {
	jwk, err := thumbprintJWK(pub)
	if err != nil {
		return "", fmt.Errorf("key id: %w", err)
	}
	sum := sha256.Sum256([]byte(jwk))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// thumbprintJWK returns what RFC 7638 hashes into the kid: the required
// members of the key's JWK in lexicographic order, without whitespace
// (§3.2, §3.3). A P-256 coordinate is always its full 32 bytes, leading
// zero bytes kept (RFC 7518 §6.2.1.2): an implementation that encodes the
// coordinate as a minimal big-endian integer gets another kid for one key
// in 128. Ed25519's x is the 32-byte public key (RFC 8037 §2).
func thumbprintJWK(pub crypto.PublicKey) (string, error) {
	if _, err := Algorithm(pub); err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *ecdsa.PrivateKey:
		return thumbprintJWK(&k.PublicKey)
	case ed25519.PrivateKey:
		return thumbprintJWK(k.Public())
	case *ecdsa.PublicKey:
		point, err := k.Bytes() // 0x04 ‖ X ‖ Y, each coordinate 32 bytes (SEC 1 §2.3.3)
		if err != nil {
			return "", err
		}
		return `{"crv":"P-256","kty":"EC","x":"` + enc(point[1:33]) + `","y":"` + enc(point[33:65]) + `"}`, nil
	case ed25519.PublicKey:
		return `{"crv":"Ed25519","kty":"OKP","x":"` + enc(k) + `"}`, nil
	}
	return "", fmt.Errorf("key type %T: want ECDSA P-256 or Ed25519", pub)
}

// GenerateKey returns a new dispatcher private key for alg (AlgES256 or
// AlgEdDSA).
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case AlgES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgEdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("generate key: algorithm %q: want %s or %s", alg, AlgES256, AlgEdDSA)
}

// ParsePrivateKeyPEM reads a dispatcher private key from a PEM "PRIVATE KEY"
// block (PKCS#8), as `openssl genpkey` writes it: EC P-256 or Ed25519.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("private key: want a PEM PRIVATE KEY block (PKCS#8)")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if _, err := Algorithm(key); err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	return key.(crypto.Signer), nil
}

// ParsePublicKeyPEM reads one dispatcher public key from a PEM "PUBLIC KEY"
// block (PKIX), as `openssl pkey -pubout` writes it.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	keys, err := ParsePublicKeysPEM(data)
	if err != nil {
		return nil, err
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("public key: %d PEM blocks, want 1", len(keys))
	}
	return keys[0], nil
}

// ParsePublicKeysPEM reads every PEM "PUBLIC KEY" block in data, so one file
// can list the old and the new key during a rotation.
func ParsePublicKeysPEM(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("public key: PEM block %q, want PUBLIC KEY", block.Type)
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		if _, err := Algorithm(key); err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("public key: no PEM PUBLIC KEY block")
	}
	return keys, nil
}

// KeySet returns the trusted keys indexed by their derived kid, as
// Verifier.Keys wants them.
func KeySet(keys ...crypto.PublicKey) (map[string]crypto.PublicKey, error) {
	set := make(map[string]crypto.PublicKey, len(keys))
	for _, k := range keys {
		kid, err := KeyID(k)
		if err != nil {
			return nil, err
		}
		set[kid] = k
	}
	return set, nil
}

// MarshalPrivateKeyPEM encodes a dispatcher private key as PEM PKCS#8.
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	if _, err := Algorithm(key); err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublicKeyPEM encodes a dispatcher public key as PEM PKIX.
func MarshalPublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	if _, err := Algorithm(pub); err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
