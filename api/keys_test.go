package api

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/go-jose/go-jose/v4"
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

// kidVector is one entry of testdata/vectors/kid.json: a dispatcher public
// key, the JWK that RFC 7638 hashes (§3.2: the required members in
// lexicographic order, no whitespace) and the kid.
type kidVector struct {
	Name         string `json:"name"`
	PublicKeyPEM string `json:"public_key_pem"`
	JWK          string `json:"jwk"`
	KID          string `json:"kid"`
}

// kidVectors are fixed: the leading-zero keys were found with
// leadingZeroKey and their JWKs and kids computed apart from this package
// (Python: the point from the DER, hashlib.sha256); the RFC 8037 key's kid
// is the RFC's own.
var kidVectors = []kidVector{
	{
		"P-256, x with a leading zero byte",
		"-----BEGIN PUBLIC KEY-----\n" +
			"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAMIVG6b/SRq1U4rQPdOb+fSAxe9E\n" +
			"Bs0FL+5OBse87g6SXW9g0goxE5ghPXzqCAwDUOt/V1TXyIz+DpfagJsaiw==\n" +
			"-----END PUBLIC KEY-----\n",
		`{"crv":"P-256","kty":"EC","x":"AMIVG6b_SRq1U4rQPdOb-fSAxe9EBs0FL-5OBse87g4","y":"kl1vYNIKMROYIT186ggMA1Drf1dU18iM_g6X2oCbGos"}`,
		"rZQnYZFMCRH66Ib-xPbIcYIzpBK7AlNYe6r1MmAdXFY",
	},
	{
		"P-256, y with a leading zero byte",
		"-----BEGIN PUBLIC KEY-----\n" +
			"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEo0JB30G0A4mrsDRHqWDeGCivMQYs\n" +
			"pzGDMTXoySD69UAAXClFgc/Ie4FCeCl5oho7mxV0ZxRQm2vWTo3rJXjdAg==\n" +
			"-----END PUBLIC KEY-----\n",
		`{"crv":"P-256","kty":"EC","x":"o0JB30G0A4mrsDRHqWDeGCivMQYspzGDMTXoySD69UA","y":"AFwpRYHPyHuBQngpeaIaO5sVdGcUUJtr1k6N6yV43QI"}`,
		"pjgOQkl3xcI_wOlNP5Dp9QIeqOWncZI-nBN8KQ1r-k8",
	},
	{
		"P-256, x and y with a leading zero byte",
		"-----BEGIN PUBLIC KEY-----\n" +
			"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAL8bbtMAWWiXW5J65NhRhIyRMZGB\n" +
			"99Qx4t4hIiVR55oAZYDDx7TNYN8LCJ9Qo2Rtu9WdYtYR/B0LOkLdFI0zRw==\n" +
			"-----END PUBLIC KEY-----\n",
		`{"crv":"P-256","kty":"EC","x":"AL8bbtMAWWiXW5J65NhRhIyRMZGB99Qx4t4hIiVR55o","y":"AGWAw8e0zWDfCwifUKNkbbvVnWLWEfwdCzpC3RSNM0c"}`,
		"WRNQCnKgTRfJx4TfhiS3cEsmRojovEb_nDiF0yJb_FE",
	},
	{
		"P-256, x with two leading zero bytes",
		"-----BEGIN PUBLIC KEY-----\n" +
			"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAADJQ3282AR2g15sYz91JicC6iuY\n" +
			"7b6+tMl2CArR3Vg0D5Qu/y8VVrwmBNan0Vv8azykyoFcvsxPbhECfNfj+w==\n" +
			"-----END PUBLIC KEY-----\n",
		`{"crv":"P-256","kty":"EC","x":"AADJQ3282AR2g15sYz91JicC6iuY7b6-tMl2CArR3Vg","y":"NA-ULv8vFVa8JgTWp9Fb_Gs8pMqBXL7MT24RAnzX4_s"}`,
		"ocTERy7B-FEzsiiZKyE8AeN8BlWOrbnU5-q-KcoNxb8",
	},
	{
		"P-256, y with two leading zero bytes",
		"-----BEGIN PUBLIC KEY-----\n" +
			"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEvXEU+JhsOvuXGBWarhS222g0p5av\n" +
			"ZLTHesfUmQIuSGkAAOQIEDrDM9vV98foWBO1iJR2ZhTImbQhdwf8EUcSNg==\n" +
			"-----END PUBLIC KEY-----\n",
		`{"crv":"P-256","kty":"EC","x":"vXEU-JhsOvuXGBWarhS222g0p5avZLTHesfUmQIuSGk","y":"AADkCBA6wzPb1ffH6FgTtYiUdmYUyJm0IXcH_BFHEjY"}`,
		"udGfgUn0tii2EufoEMxgkgkTGYW7wOXGLhkVncv-f5Y",
	},
	{
		"P-256, testdata/keys/p256.pub.pem",
		"-----BEGIN PUBLIC KEY-----\n" +
			"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEG4m8L63JNkXZTTfHIiq78V2vNyqm\n" +
			"uNcwo7Fyx8CUZGTX8flV/4BzhC1W/AulzSmMxc8zg7RkROtEDk/ssZ5haw==\n" +
			"-----END PUBLIC KEY-----\n",
		`{"crv":"P-256","kty":"EC","x":"G4m8L63JNkXZTTfHIiq78V2vNyqmuNcwo7Fyx8CUZGQ","y":"1_H5Vf-Ac4QtVvwLpc0pjMXPM4O0ZETrRA5P7LGeYWs"}`,
		"iffeIOe2BEurKIgzefclNmLGAMxUhzM5-8tcSG2KmnU",
	},
	{
		"P-256, testdata/keys/p256-other.pub.pem",
		"-----BEGIN PUBLIC KEY-----\n" +
			"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEO98ts0mU/hIs9mTU45tV5ITwDAbj\n" +
			"GSOG18LQOC6ABIRKunq6cgljj1ZeXOd0S0yWE6+qtRpJR4mt7p1EFzh3Jw==\n" +
			"-----END PUBLIC KEY-----\n",
		`{"crv":"P-256","kty":"EC","x":"O98ts0mU_hIs9mTU45tV5ITwDAbjGSOG18LQOC6ABIQ","y":"Srp6unIJY49WXlzndEtMlhOvqrUaSUeJre6dRBc4dyc"}`,
		"j9bJODJ2KhvU_397_GOHX_PWQrM1QDhuGOa24DhdK_w",
	},
	{
		"Ed25519, testdata/keys/ed25519.pub.pem",
		"-----BEGIN PUBLIC KEY-----\n" +
			"MCowBQYDK2VwAyEAwzDXKUD+JdrUikUrwjzCWMTGhcVhL3aTQ7GrMCYic7A=\n" +
			"-----END PUBLIC KEY-----\n",
		`{"crv":"Ed25519","kty":"OKP","x":"wzDXKUD-JdrUikUrwjzCWMTGhcVhL3aTQ7GrMCYic7A"}`,
		"X3-Dy5zy5c9A0b2H0yIj8fHMyhv1OZ9ThiktZri6WcU",
	},
	{
		"Ed25519, RFC 8037 Appendix A.3",
		"-----BEGIN PUBLIC KEY-----\n" +
			"MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n" +
			"-----END PUBLIC KEY-----\n",
		`{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`,
		"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
	},
}

// checkKIDVector checks one vector against KeyID, thumbprintJWK and
// go-jose's Thumbprint, a second implementation.
func checkKIDVector(t *testing.T, v kidVector) {
	t.Helper()
	pub, err := ParsePublicKeyPEM([]byte(v.PublicKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	if jwk, err := thumbprintJWK(pub); err != nil || jwk != v.JWK {
		t.Errorf("JWK %s (%v), want %s", jwk, err, v.JWK)
	}
	if sum := sha256.Sum256([]byte(v.JWK)); base64.RawURLEncoding.EncodeToString(sum[:]) != v.KID {
		t.Errorf("kid %s is not the SHA-256 of the JWK", v.KID)
	}
	if kid, err := KeyID(pub); err != nil || kid != v.KID {
		t.Errorf("KeyID %s (%v), want %s", kid, err, v.KID)
	}
	if sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256); err != nil || base64.RawURLEncoding.EncodeToString(sum) != v.KID {
		t.Errorf("go-jose thumbprint %s (%v), want %s", base64.RawURLEncoding.EncodeToString(sum), err, v.KID)
	}
}

// TestKeyIDVectors checks the fixed vectors, at least three of them P-256
// keys with a coordinate that starts with a zero byte.
func TestKeyIDVectors(t *testing.T) {
	leadingZero := 0
	for _, v := range kidVectors {
		t.Run(v.Name, func(t *testing.T) {
			checkKIDVector(t, v)
			if pub, _ := ParsePublicKeyPEM([]byte(v.PublicKeyPEM)); pub != nil {
				if k, ok := pub.(*ecdsa.PublicKey); ok {
					if point, _ := k.Bytes(); point[1] == 0 || point[33] == 0 {
						leadingZero++
					}
				}
			}
		})
	}
	if leadingZero < 3 {
		t.Errorf("%d P-256 vectors with a leading zero byte, want at least 3", leadingZero)
	}
}

// TestKeyIDVectorsFile checks every entry of testdata/vectors/kid.json, the
// file integrators test their own code against, and that it holds the
// vectors above (-update writes it).
func TestKeyIDVectorsFile(t *testing.T) {
	name := filepath.Join("testdata", "vectors", "kid.json")
	want, err := json.MarshalIndent(kidVectors, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.WriteFile(name, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run KeyIDVectorsFile -update)", err)
	}
	var file []kidVector
	if err := json.Unmarshal(got, &file); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, v := range file {
		t.Run(v.Name, func(t *testing.T) { checkKIDVector(t, v) })
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from kidVectors (rerun with -update if intended)", name)
	}
}

// leadingZeroKey generates P-256 keys until one has a coordinate that ok
// accepts; it found the leading-zero vectors.
func leadingZeroKey(t *testing.T, ok func(x, y []byte) bool) *ecdsa.PublicKey {
	t.Helper()
	for range 1 << 16 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if point, _ := k.PublicKey.Bytes(); ok(point[1:33], point[33:]) {
			return &k.PublicKey
		}
	}
	t.Fatal("no such key in 65536 tries")
	return nil
}

// TestKeyIDPadsCoordinates checks fresh keys whose x or y starts with a
// zero byte (one key in 256 each) against the thumbprint computed by hand.
func TestKeyIDPadsCoordinates(t *testing.T) {
	for name, ok := range map[string]func(x, y []byte) bool{
		"x": func(x, _ []byte) bool { return x[0] == 0 },
		"y": func(_, y []byte) bool { return y[0] == 0 },
	} {
		t.Run(name, func(t *testing.T) {
			pub := leadingZeroKey(t, ok)
			point, _ := pub.Bytes()
			enc := base64.RawURLEncoding.EncodeToString
			jwk := `{"crv":"P-256","kty":"EC","x":"` + enc(point[1:33]) + `","y":"` + enc(point[33:]) + `"}`
			sum := sha256.Sum256([]byte(jwk))
			if kid, err := KeyID(pub); err != nil || kid != enc(sum[:]) {
				t.Errorf("KeyID %s (%v), want %s for %s", kid, err, enc(sum[:]), jwk)
			}
		})
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
