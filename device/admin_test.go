package device

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/device/pivsim"
	"github.com/tekenid/teken/internal/testenv"
)

// freshCard is a software token as it leaves the factory.
func freshCard(t testing.TB, version [3]byte) *pivsim.Card {
	t.Helper()
	card, err := pivsim.New(pivsim.Config{Serial: 5150, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { card.Close() })
	return card
}

func adminCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestEnrolment walks a fresh token through enrolment as IT does it:
// change PIN and PUK, protect the management key, generate a key, attest
// it, sign a CSR, import the certificate; then checks the token with ykman
// and yubico-piv-tool.
func TestEnrolment(t *testing.T) {
	e := newEnv(t, Options{})
	card := freshCard(t, [3]byte{5, 4, 3})
	e.insert(t, card, 0)
	ctx := adminCtx(t)
	reader := e.pcscd.Readers[0]

	info, err := e.tokens.Info(ctx, reader)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults{Known: true, PIN: true, PUK: true, ManagementKey: true}
	if info.Defaults != want || info.PUKRetries != 3 || info.PINRetries != 3 || info.FormFactor != "USB-A Keychain" {
		t.Fatalf("fresh token: defaults %+v, puk retries %d, pin retries %d, form factor %q", info.Defaults, info.PUKRetries, info.PINRetries, info.FormFactor)
	}

	pin := []byte("314159")
	var pub crypto.PublicKey
	var csrDER []byte
	var leaf, intermediate *x509.Certificate
	err = e.tokens.Admin(ctx, reader, func(a *Admin) error {
		if err := a.ChangePIN([]byte(testPIN), pin); err != nil {
			return err
		}
		if err := a.ChangePUK([]byte(testPUK), []byte("27182818")); err != nil {
			return err
		}
		if err := a.ProtectManagementKey(pin); err != nil {
			return err
		}
		// A second time finds the stored key and keeps it.
		if err := a.ProtectManagementKey(pin); err != nil {
			return err
		}
		info, err := a.Info()
		if err != nil {
			return err
		}
		if want := (Defaults{Known: true}); info.Defaults != want {
			t.Errorf("after enrolment: defaults %+v, want %+v", info.Defaults, want)
		}
		if pub, err = a.GenerateKey(pin, SlotSignature, AlgorithmP256, TouchNever); err != nil {
			return err
		}
		if leaf, intermediate, err = a.Attestation(SlotSignature); err != nil {
			return err
		}
		signer, err := a.Signer(SlotSignature, pin)
		if err != nil {
			return err
		}
		tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "Budi Santoso", SerialNumber: "198503302010011001"}}
		if csrDER, err = x509.CreateCertificateRequest(rand.Reader, tmpl, signer); err != nil {
			return err
		}
		// Another key's certificate is refused before the card is written.
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err := a.ImportCertificate(pin, SlotSignature, enrolCert(t, other.Public())); !errors.Is(err, ErrKeyMismatch) {
			t.Errorf("import of another key's certificate: %v, want ErrKeyMismatch", err)
		}
		return a.ImportCertificate(pin, SlotSignature, enrolCert(t, pub))
	})
	if err != nil {
		t.Fatalf("enrolment: %v", err)
	}

	// The attestation is a chain: leaf by intermediate, intermediate by
	// the software token's root, as a YubiKey's is by Yubico's.
	root, err := card.AttestationRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.CheckSignatureFrom(intermediate); err != nil {
		t.Errorf("attestation not signed by the f9 certificate: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	inter.AddCert(intermediate)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("attestation chain: %v", err)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !k.Equal(pub) {
		t.Errorf("attestation certifies another key")
	}

	csrPath := filepath.Join(t.TempDir(), "csr.pem")
	if err := os.WriteFile(csrPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	openssl := testenv.LookPath(t, "openssl")
	if out, err := exec.CommandContext(ctx, openssl, "req", "-verify", "-noout", "-in", csrPath).CombinedOutput(); err != nil {
		t.Errorf("openssl req -verify: %v\n%s", err, out)
	}

	info, err = e.tokens.Info(ctx, reader)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Defaults{Known: true}); info.Defaults != want {
		t.Errorf("after enrolment: defaults %+v, want %+v", info.Defaults, want)
	}
	if info.SignCert == nil || !info.SignCert.PublicKey.(*ecdsa.PublicKey).Equal(pub) {
		t.Errorf("slot 9c certificate is not the imported one")
	}
	checkWithTools(t, ctx, reader, string(pin))
}

// checkWithTools reads the enrolled token with ykman and yubico-piv-tool,
// which must find the PIN-protected AES-192 management key and the slot 9c
// certificate.
func checkWithTools(t *testing.T, ctx context.Context, reader, pin string) {
	t.Helper()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, testenv.LookPath(t, name), args...)
		cmd.Env = os.Environ() // carries PCSCLITE_CSOCK_NAME to the private pcscd
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run("ykman", "--reader", reader, "piv", "info")
	t.Logf("ykman piv info:\n%s", out)
	for _, want := range []string{"Management key algorithm: AES192", "Management key is stored on the YubiKey, protected by PIN.", "Slot 9c", "CN=enrolled"} {
		if !strings.Contains(out, want) {
			t.Errorf("ykman piv info lacks %q", want)
		}
	}
	if strings.Contains(out, "WARNING") {
		t.Errorf("ykman still warns of a default")
	}
	out = run("yubico-piv-tool", "-r", reader, "-a", "status")
	t.Logf("yubico-piv-tool -a status:\n%s", out)
	for _, want := range []string{"Slot 9c", "CN=enrolled"} {
		if !strings.Contains(out, want) {
			t.Errorf("yubico-piv-tool status lacks %q", want)
		}
	}
	// ykman takes the management key from the PIN-protected object, so it
	// administers the token with the PIN alone.
	run("ykman", "--reader", reader, "piv", "keys", "generate", "-P", pin, "-a", "ECCP256", "9d", "-")
}

// enrolCert makes a certificate for pub from a throwaway CA.
func enrolCert(t testing.TB, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "enrolled"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	ca := &x509.Certificate{Subject: pkix.Name{CommonName: "enrolment CA"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestGenerateAlgorithms generates each algorithm on a 5.7 token, signs
// with it through Signer and checks the signature; Ed25519 is refused on
// older firmware.
func TestGenerateAlgorithms(t *testing.T) {
	e := newEnv(t, Options{})
	card := freshCard(t, [3]byte{5, 7, 1})
	old := freshCard(t, [3]byte{5, 4, 3})
	e.insert(t, card, 0)
	e.insert(t, old, 1)
	ctx := adminCtx(t)
	msg := []byte("surat keputusan")
	digest := sha256.Sum256(msg)
	for _, alg := range []KeyAlgorithm{AlgorithmP256, AlgorithmP384, AlgorithmRSA2048, AlgorithmEd25519} {
		err := e.tokens.Admin(ctx, e.pcscd.Readers[0], func(a *Admin) error {
			pub, err := a.GenerateKey([]byte(testPIN), SlotAuthentication, alg, TouchNever)
			if err != nil {
				return err
			}
			s, err := a.Signer(SlotAuthentication, []byte(testPIN))
			if err != nil {
				return err
			}
			// Twice: PIN policy always needs the PIN before each signature.
			for range 2 {
				var opts crypto.SignerOpts = crypto.SHA256
				in := digest[:]
				if alg == AlgorithmEd25519 {
					opts, in = crypto.Hash(0), msg
				}
				sig, err := s.Sign(rand.Reader, in, opts)
				if err != nil {
					return err
				}
				if !verifySig(pub, digest[:], msg, sig) {
					t.Errorf("algorithm %d: signature does not verify", alg)
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("algorithm %d: %v", alg, err)
		}
	}
	err := e.tokens.Admin(ctx, e.pcscd.Readers[1], func(a *Admin) error {
		_, err := a.GenerateKey([]byte(testPIN), SlotAuthentication, AlgorithmEd25519, TouchNever)
		return err
	})
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("ed25519 on 5.4.3: %v, want ErrUnsupported", err)
	}
}

func verifySig(pub crypto.PublicKey, digest, msg, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, digest, sig)
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig) == nil
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	}
	return false
}

// TestAdminPINErrors: a wrong PIN reports the tries left and is not
// retried; the third blocks the PIN; a wrong PUK is a PUK error.
func TestAdminPINErrors(t *testing.T) {
	e := newEnv(t, Options{})
	card := freshCard(t, [3]byte{5, 4, 3})
	e.insert(t, card, 0)
	ctx := adminCtx(t)
	reader := e.pcscd.Readers[0]
	admin := func(fn func(*Admin) error) error { return e.tokens.Admin(ctx, reader, fn) }
	var pe *PINError
	err := admin(func(a *Admin) error {
		_, err := a.GenerateKey([]byte("000000"), SlotSignature, AlgorithmP256, TouchNever)
		return err
	})
	if !errors.As(err, &pe) || pe.Retries != 2 || pe.PUK {
		t.Fatalf("generate with a wrong pin: %v, want PINError with 2 retries", err)
	}
	if err := admin(func(a *Admin) error { return a.ProtectManagementKey([]byte("000000")) }); !errors.As(err, &pe) || pe.Retries != 1 {
		t.Fatalf("protect with a wrong pin: %v, want PINError with 1 retry", err)
	}
	if info, err := e.tokens.Info(ctx, reader); err != nil || !info.Defaults.ManagementKey {
		t.Fatalf("management key changed by a refused protect: %+v %v", info.Defaults, err)
	}
	if err := admin(func(a *Admin) error { return a.ChangePIN([]byte("000000"), []byte("111111")) }); !errors.Is(err, ErrPINBlocked) {
		t.Fatalf("third wrong pin: %v, want ErrPINBlocked", err)
	}
	if err := admin(func(a *Admin) error { return a.ChangePIN([]byte(testPIN), []byte("111111")) }); !errors.Is(err, ErrPINBlocked) {
		t.Fatalf("right pin after block: %v, want ErrPINBlocked", err)
	}
	if err := admin(func(a *Admin) error { return a.ChangePUK([]byte("00000000"), []byte("11111111")) }); !errors.As(err, &pe) || !pe.PUK || pe.Retries != 2 {
		t.Fatalf("wrong puk: %v, want PUK PINError with 2 retries", err)
	}
	info, err := e.tokens.Info(ctx, reader)
	if err != nil {
		t.Fatal(err)
	}
	if info.PINRetries != 0 || info.PUKRetries != 2 {
		t.Errorf("retries pin %d puk %d, want 0 and 2", info.PINRetries, info.PUKRetries)
	}
	if err := e.tokens.Unblock(ctx, reader, []byte(testPUK), []byte("424242")); err != nil {
		t.Fatal(err)
	}
	if err := admin(func(a *Admin) error { return a.ChangePIN([]byte("42"), []byte("1")) }); err == nil {
		t.Errorf("short new pin accepted")
	}
}

// TestManagementKeyUnknown: a token whose management key was changed
// without storing it cannot be administered.
func TestManagementKeyUnknown(t *testing.T) {
	e := newEnv(t, Options{})
	key := make([]byte, 24)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	card, err := pivsim.New(pivsim.Config{Serial: 77, Version: [3]byte{5, 4, 3}, ManagementKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { card.Close() })
	e.insert(t, card, 0)
	ctx := adminCtx(t)
	err = e.tokens.Admin(ctx, e.pcscd.Readers[0], func(a *Admin) error { return a.ProtectManagementKey([]byte(testPIN)) })
	if !errors.Is(err, ErrManagementKeyUnknown) {
		t.Errorf("protect: %v, want ErrManagementKeyUnknown", err)
	}
	err = e.tokens.Admin(ctx, e.pcscd.Readers[0], func(a *Admin) error {
		_, err := a.GenerateKey([]byte(testPIN), SlotSignature, AlgorithmP256, TouchNever)
		return err
	})
	if !errors.Is(err, ErrManagementKeyUnknown) {
		t.Errorf("generate: %v, want ErrManagementKeyUnknown", err)
	}
}

// TestInfoWithoutMetadata: firmware before 5.3 cannot say which defaults
// it still has.
func TestInfoWithoutMetadata(t *testing.T) {
	e := newEnv(t, Options{})
	card := freshCard(t, [3]byte{5, 2, 7})
	e.insert(t, card, 0)
	ctx := adminCtx(t)
	info, err := e.tokens.Info(ctx, e.pcscd.Readers[0])
	if err != nil {
		t.Fatal(err)
	}
	if info.Defaults != (Defaults{}) || info.PUKRetries != -1 || info.PINRetries != 3 {
		t.Errorf("5.2.7: defaults %+v, puk retries %d, pin retries %d; want unknown, -1, 3", info.Defaults, info.PUKRetries, info.PINRetries)
	}
}

// TestProtectManagementKeyOldFirmware: before 5.4 the random key is 3DES,
// and before 5.3 (no metadata) the stored key is found without it.
func TestProtectManagementKeyOldFirmware(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := adminCtx(t)
	for i, v := range [][3]byte{{5, 2, 7}, {5, 3, 1}} {
		card := freshCard(t, v)
		e.insert(t, card, i)
		reader := e.pcscd.Readers[i]
		for range 2 { // the second finds the stored key
			if err := e.tokens.Admin(ctx, reader, func(a *Admin) error { return a.ProtectManagementKey([]byte(testPIN)) }); err != nil {
				t.Fatalf("%v: protect: %v", v, err)
			}
		}
		err := e.tokens.Admin(ctx, reader, func(a *Admin) error {
			_, err := a.GenerateKey([]byte(testPIN), SlotSignature, AlgorithmP256, TouchAlways)
			return err
		})
		if err != nil {
			t.Fatalf("%v: generate with the stored key: %v", v, err)
		}
		info, err := e.tokens.Info(ctx, reader)
		if err != nil {
			t.Fatal(err)
		}
		if v[1] >= 3 && info.Defaults != (Defaults{Known: true, PIN: true, PUK: true}) {
			t.Errorf("%v: defaults %+v", v, info.Defaults)
		}
	}
	cmd := exec.CommandContext(ctx, testenv.LookPath(t, "ykman"), "--reader", e.pcscd.Readers[1], "piv", "info")
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ykman piv info: %v\n%s", err, out)
	}
	for _, want := range []string{"Management key algorithm: TDES", "Management key is stored on the YubiKey, protected by PIN."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ykman piv info on 5.3.1 lacks %q:\n%s", want, out)
		}
	}
}

// TestSignerWrongPIN: a wrong PIN fails Signer and costs one try only.
func TestSignerWrongPIN(t *testing.T) {
	e := newEnv(t, Options{})
	card := freshCard(t, [3]byte{5, 4, 3})
	e.insert(t, card, 0)
	ctx := adminCtx(t)
	err := e.tokens.Admin(ctx, e.pcscd.Readers[0], func(a *Admin) error {
		if _, err := a.GenerateKey([]byte(testPIN), SlotSignature, AlgorithmP384, TouchNever); err != nil {
			return err
		}
		_, err := a.Signer(SlotSignature, []byte("000000"))
		var pe *PINError
		if !errors.As(err, &pe) || pe.Retries != 2 {
			t.Errorf("signer with a wrong pin: %v, want PINError with 2 retries", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := card.PINRetries(); n != 2 {
		t.Errorf("pin retries %d, want 2", n)
	}
}
