package api

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestKeyIDRFC8037 checks the kid against the Ed25519 JWK thumbprint of
// RFC 8037 Appendix A.3.
func TestKeyIDRFC8037(t *testing.T) {
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	kid, err := KeyID(ed25519.PublicKey(x))
	if err != nil {
		t.Fatal(err)
	}
	if want := "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; kid != want {
		t.Errorf("kid %s, want %s", kid, want)
	}
}

// TestKeyIDP256 recomputes the RFC 7638 thumbprint of an EC key by hand.
func TestKeyIDP256(t *testing.T) {
	pub := loadPublic(t, "p256").(*ecdsa.PublicKey)
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	jwk := fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, enc(raw[1:33]), enc(raw[33:]))
	sum := sha256.Sum256([]byte(jwk))
	kid, err := KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := enc(sum[:]); kid != want {
		t.Errorf("kid %s, want %s", kid, want)
	}
}

func TestKeyPEMRoundTrip(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			key, err := GenerateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			privPEM, err := MarshalPrivateKeyPEM(key)
			if err != nil {
				t.Fatal(err)
			}
			pubPEM, err := MarshalPublicKeyPEM(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParsePrivateKeyPEM(privPEM)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := ParsePublicKeyPEM(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Public(), pub) {
				t.Error("public key of the parsed private key differs from the parsed public key")
			}
			if got, _ := Algorithm(pub); got != alg {
				t.Errorf("Algorithm = %s", got)
			}
			s, err := NewSigner(back)
			if err != nil {
				t.Fatal(err)
			}
			kid, _ := KeyID(pub)
			if s.KID() != kid {
				t.Errorf("signer kid %s, KeyID %s", s.KID(), kid)
			}
		})
	}
}

func TestParsePublicKeysPEMRotation(t *testing.T) {
	var both []byte
	for _, name := range []string{"p256", "ed25519"} {
		b, err := os.ReadFile(filepath.Join("testdata", "keys", name+".pub.pem"))
		if err != nil {
			t.Fatal(err)
		}
		both = append(both, b...)
	}
	keys, err := ParsePublicKeysPEM(both)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParsePublicKeysPEM = %d keys, %v", len(keys), err)
	}
	set, err := KeySet(keys...)
	if err != nil || len(set) != 2 {
		t.Fatalf("KeySet = %v, %v", set, err)
	}
	if _, err := ParsePublicKeyPEM(both); err == nil {
		t.Error("ParsePublicKeyPEM accepted two keys")
	}
}

func TestKeysRefused(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	pkix := func(k any) []byte {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	sec1, err := x509.MarshalECPrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"rsa private":  pkcs8(rsaKey),
		"p384 private": pkcs8(p384),
		"sec1 private": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		"garbage":      []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		"empty":        nil,
	} {
		if _, err := ParsePrivateKeyPEM(b); err == nil {
			t.Errorf("ParsePrivateKeyPEM accepted %s", name)
		}
	}
	for name, b := range map[string][]byte{
		"rsa public":  pkix(&rsaKey.PublicKey),
		"p384 public": pkix(&p384.PublicKey),
		"private":     pkcs8(p384),
		"empty":       nil,
	} {
		if _, err := ParsePublicKeysPEM(b); err == nil {
			t.Errorf("ParsePublicKeysPEM accepted %s", name)
		}
	}
	if _, err := NewSigner(rsaKey); err == nil {
		t.Error("NewSigner accepted an RSA key")
	}
	if _, err := GenerateKey("RS256"); err == nil {
		t.Error("GenerateKey made an RS256 key")
	}
}
