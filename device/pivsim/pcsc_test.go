package pivsim

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"
	"github.com/tekenid/teken/internal/testenv"
)

// inserted starts a private pcscd, inserts card into reader 0 and returns
// the reader name once piv-go can open it.
func inserted(t *testing.T, c *Card) (*testenv.PCSCD, string) {
	t.Helper()
	d := testenv.StartPCSCD(t)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Insert(ctx, d.VPCDAddr(0)); err != nil {
		t.Fatalf("insert: %v\n%s", err, d.Log())
	}
	reader := d.Readers[0]
	waitOpen(t, reader)
	return d, reader
}

func waitOpen(t *testing.T, reader string) {
	t.Helper()
	err := testenv.WaitFor(context.Background(), 20*time.Second, func() error {
		yk, err := piv.Open(reader)
		if err != nil {
			return err
		}
		return yk.Close()
	})
	if err != nil {
		t.Fatalf("open %s: %v", reader, err)
	}
}

// waitAbsent waits until pcscd reports no card in reader. It asks from a
// separate process (opensc-tool -l, which only reads reader states) because
// piv.Open in the moment pcscd still believes a removed card present leaks
// an exclusive handle when its SELECT fails (piv-go v2.6.0 client.Open
// closes only the transaction), which blocks the reader for this process.
func waitAbsent(t *testing.T, reader string) {
	t.Helper()
	tool := testenv.LookPath(t, "opensc-tool")
	err := testenv.WaitFor(context.Background(), 10*time.Second, func() error {
		out, err := exec.Command(tool, "-l").CombinedOutput()
		if err != nil {
			return fmt.Errorf("opensc-tool -l: %w: %s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasSuffix(line, reader) {
				if f := strings.Fields(line); len(f) > 1 && f[1] == "No" {
					return nil
				}
				return fmt.Errorf("card still present: %q", line)
			}
		}
		return fmt.Errorf("reader %s not listed: %s", reader, out)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, reader string) *piv.YubiKey {
	t.Helper()
	yk, err := piv.Open(reader)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { yk.Close() })
	return yk
}

func newCard(t *testing.T) *Card {
	t.Helper()
	c, err := New(Config{Serial: 12345678})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPresence(t *testing.T) {
	c := newCard(t)
	d, reader := inserted(t, c)
	cards, err := piv.Cards()
	if err != nil || !slices.Contains(cards, reader) {
		t.Fatalf("Cards() = %v, %v; want %s listed", cards, err, reader)
	}
	if !c.Present() {
		t.Fatal("Present() = false after Insert")
	}
	if err := c.Insert(context.Background(), d.VPCDAddr(0)); !errors.Is(err, ErrPresent) {
		t.Fatalf("second Insert = %v, want ErrPresent", err)
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	if c.Present() {
		t.Fatal("Present() = true after Remove")
	}
	waitAbsent(t, reader)
	if yk, err := piv.Open(reader); err == nil {
		yk.Close()
		t.Fatal("piv.Open succeeded after Remove")
	}
	if err := c.Remove(); err != nil {
		t.Fatalf("Remove when not inserted: %v", err)
	}
	// Tap: present during the hold, gone afterwards.
	tapped := make(chan error, 1)
	go func() { tapped <- c.Tap(context.Background(), d.VPCDAddr(0), 3*time.Second) }()
	waitOpen(t, reader)
	if err := <-tapped; err != nil {
		t.Fatalf("Tap: %v", err)
	}
	if c.Present() {
		t.Fatal("Present() = true after Tap")
	}
}

func TestPIVGoBasics(t *testing.T) {
	c := newCard(t)
	_, reader := inserted(t, c)
	yk := open(t, reader)

	serial, err := yk.Serial()
	if err != nil || serial != 12345678 {
		t.Fatalf("Serial() = %d, %v", serial, err)
	}
	if v := yk.Version(); v != (piv.Version{Major: 5, Minor: 4, Patch: 3}) {
		t.Fatalf("Version() = %+v", v)
	}
	if n, err := yk.Retries(); err != nil || n != 3 {
		t.Fatalf("Retries() = %d, %v", n, err)
	}
	var ae piv.AuthErr
	if err := yk.VerifyPIN("654321"); !errors.As(err, &ae) || ae.Retries != 2 {
		t.Fatalf("wrong PIN: %v, want AuthErr{2}", err)
	}
	if err := yk.VerifyPIN(piv.DefaultPIN); err != nil {
		t.Fatalf("right PIN: %v", err)
	}
	if n := c.PINRetries(); n != 3 {
		t.Fatalf("retries after right PIN = %d, want 3", n)
	}
	for want := 2; want >= 0; want-- {
		if err := yk.VerifyPIN("000000"); !errors.As(err, &ae) || ae.Retries != want {
			t.Fatalf("wrong PIN: %v, want AuthErr{%d}", err, want)
		}
	}
	if err := yk.VerifyPIN(piv.DefaultPIN); !errors.As(err, &ae) || ae.Retries != 0 {
		t.Fatalf("right PIN on blocked card: %v, want AuthErr{0}", err)
	}
	if c.PINRetries() != 0 {
		t.Fatalf("PINRetries() = %d", c.PINRetries())
	}
	if err := yk.Unblock("87654321", "222222"); !errors.As(err, &ae) || ae.Retries != 2 {
		t.Fatalf("Unblock with wrong PUK: %v", err)
	}
	if err := yk.Unblock(piv.DefaultPUK, "222222"); err != nil {
		t.Fatalf("Unblock: %v", err)
	}
	if err := yk.VerifyPIN("222222"); err != nil {
		t.Fatalf("new PIN: %v", err)
	}
	if err := yk.SetPIN("222222", piv.DefaultPIN); err != nil {
		t.Fatalf("SetPIN: %v", err)
	}
	if err := yk.SetPUK(piv.DefaultPUK, "11223344"); err != nil {
		t.Fatalf("SetPUK: %v", err)
	}

	// Management key storage in PIN-protected data (piv-go Metadata).
	newKey := []byte("0123456789abcdef01234567")
	if err := yk.SetMetadata(piv.DefaultManagementKey, &piv.Metadata{ManagementKey: &newKey}); err != nil {
		t.Fatalf("SetMetadata: %v", err)
	}
	m, err := yk.Metadata(piv.DefaultPIN)
	if err != nil || m.ManagementKey == nil || string(*m.ManagementKey) != string(newKey) {
		t.Fatalf("Metadata() = %+v, %v", m, err)
	}
	if err := yk.SetManagementKey(piv.DefaultManagementKey, newKey); err != nil {
		t.Fatalf("SetManagementKey: %v", err)
	}
	if _, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotAuthentication, piv.Key{Algorithm: piv.AlgorithmEC256}); err == nil {
		t.Fatal("GenerateKey with the old management key succeeded")
	}
	if _, err := yk.GenerateKey(newKey, piv.SlotAuthentication, piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever}); err != nil {
		t.Fatalf("GenerateKey with the AES-192 key: %v", err)
	}
}

func TestPIVGoSign(t *testing.T) {
	c := newCard(t)
	_, reader := inserted(t, c)
	yk := open(t, reader)
	msg := []byte("surat keluar 001/2026")
	h256 := sha256.Sum256(msg)
	h384 := sha512.Sum384(msg)
	for _, tc := range []struct {
		name   string
		slot   piv.Slot
		alg    piv.Algorithm
		opts   crypto.SignerOpts
		digest []byte
	}{
		{"P256", piv.SlotAuthentication, piv.AlgorithmEC256, crypto.SHA256, h256[:]},
		{"P384", piv.SlotSignature, piv.AlgorithmEC384, crypto.SHA384, h384[:]},
		{"RSA2048-PKCS1v15", piv.SlotKeyManagement, piv.AlgorithmRSA2048, crypto.SHA256, h256[:]},
		{"RSA2048-PSS", piv.SlotKeyManagement, piv.AlgorithmRSA2048, &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}, h256[:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, err := yk.GenerateKey(piv.DefaultManagementKey, tc.slot, piv.Key{Algorithm: tc.alg, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever})
			if err != nil {
				t.Fatalf("GenerateKey: %v", err)
			}
			priv, err := yk.PrivateKey(tc.slot, pub, piv.KeyAuth{PIN: piv.DefaultPIN})
			if err != nil {
				t.Fatal(err)
			}
			sig, err := priv.(crypto.Signer).Sign(rand.Reader, tc.digest, tc.opts)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			switch p := pub.(type) {
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(p, tc.digest, sig) {
					t.Fatal("ECDSA signature does not verify")
				}
			case *rsa.PublicKey:
				if o, ok := tc.opts.(*rsa.PSSOptions); ok {
					err = rsa.VerifyPSS(p, o.Hash, tc.digest, sig, o)
				} else {
					err = rsa.VerifyPKCS1v15(p, tc.opts.HashFunc(), tc.digest, sig)
				}
				if err != nil {
					t.Fatalf("RSA signature does not verify: %v", err)
				}
			}
		})
	}
}

func TestPIVGoCertificateChaining(t *testing.T) {
	c := newCard(t)
	_, reader := inserted(t, c)
	yk := open(t, reader)
	pub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotSignature, piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyAlways, TouchPolicy: piv.TouchPolicyNever})
	if err != nil {
		t.Fatal(err)
	}
	cert := bigCertificate(t, pub)
	if len(cert.Raw) <= 1024 {
		t.Fatalf("test certificate is %d bytes, want > 1 KiB", len(cert.Raw))
	}
	if err := yk.SetCertificate(piv.DefaultManagementKey, piv.SlotSignature, cert); err != nil {
		t.Fatalf("SetCertificate: %v", err)
	}
	got, err := yk.Certificate(piv.SlotSignature)
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	if !got.Equal(cert) {
		t.Fatal("certificate changed in the round trip")
	}
	if _, err := yk.Certificate(piv.SlotCardAuthentication); !errors.Is(err, piv.ErrNotFound) {
		t.Fatalf("empty slot: %v, want ErrNotFound", err)
	}

	// PIN policy always: every signature needs its own VERIFY.
	h := sha256.Sum256([]byte("nota dinas"))
	priv, err := yk.PrivateKey(piv.SlotSignature, pub, piv.KeyAuth{})
	if err != nil {
		t.Fatal(err)
	}
	signer := priv.(crypto.Signer)
	if _, err := signer.Sign(rand.Reader, h[:], crypto.SHA256); err == nil {
		t.Fatal("signed without a PIN on a PIN-always key")
	}
	if err := yk.VerifyPIN(piv.DefaultPIN); err != nil {
		t.Fatal(err)
	}
	if _, err := signer.Sign(rand.Reader, h[:], crypto.SHA256); err != nil {
		t.Fatalf("sign after VERIFY: %v", err)
	}
	if _, err := signer.Sign(rand.Reader, h[:], crypto.SHA256); err == nil {
		t.Fatal("second signature on one VERIFY of a PIN-always key")
	}
	// With the PIN in KeyAuth piv-go verifies before each signature.
	priv, err = yk.PrivateKey(piv.SlotSignature, pub, piv.KeyAuth{PIN: piv.DefaultPIN})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := priv.(crypto.Signer).Sign(rand.Reader, h[:], crypto.SHA256); err != nil {
			t.Fatalf("signature %d with KeyAuth.PIN: %v", i, err)
		}
	}
}

func TestResetClearsPIN(t *testing.T) {
	c := newCard(t)
	if _, err := c.GenerateKey(SlotAuthentication, AlgECCP256, PINPolicyOnce, TouchPolicyNever); err != nil {
		t.Fatal(err)
	}
	d, reader := inserted(t, c)
	loggedIn := func() bool {
		yk := open(t, reader)
		defer yk.Close()
		// VERIFY without data answers 9000 only in the verified state;
		// piv-go's Retries reports that as an error.
		_, err := yk.Retries()
		return err != nil
	}
	yk := open(t, reader)
	if err := yk.VerifyPIN(piv.DefaultPIN); err != nil {
		t.Fatal(err)
	}
	yk.Close()
	if !loggedIn() {
		t.Fatal("PIN not verified across piv.Open with the card left in")
	}
	// Removing and reinserting is a power cycle.
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	waitAbsent(t, reader)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Insert(ctx, d.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	waitOpen(t, reader)
	if loggedIn() {
		t.Fatal("PIN still verified after removal")
	}
}

func TestSaveLoadThroughPCSC(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token.json")
	c := newCard(t)
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	d, reader := inserted(t, c)
	yk := open(t, reader)
	pub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotAuthentication, piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever})
	if err != nil {
		t.Fatal(err)
	}
	var ae piv.AuthErr
	if err := yk.VerifyPIN("999999"); !errors.As(err, &ae) {
		t.Fatal(err)
	}
	yk.Close()
	c.Close()
	waitAbsent(t, reader)

	// The card saved itself after each change: a new process would see
	// the key and the spent PIN try.
	c2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	if c2.PINRetries() != 2 || c2.Serial() != 12345678 {
		t.Fatalf("loaded card: retries %d serial %d", c2.PINRetries(), c2.Serial())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c2.Insert(ctx, d.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	waitOpen(t, reader)
	yk = open(t, reader)
	priv, err := yk.PrivateKey(piv.SlotAuthentication, pub, piv.KeyAuth{PIN: piv.DefaultPIN})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("after restart"))
	sig, err := priv.(crypto.Signer).Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("sign with the loaded key: %v", err)
	}
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), h[:], sig) {
		t.Fatal("loaded key signs with a different key")
	}
	if c2.PINRetries() != 3 {
		t.Fatalf("retries after right PIN = %d", c2.PINRetries())
	}
}

func TestPIVGoImportAttest(t *testing.T) {
	c := newCard(t)
	_, reader := inserted(t, c)
	yk := open(t, reader)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := yk.SetPrivateKeyInsecure(piv.DefaultManagementKey, piv.SlotCardAuthentication, key, piv.Key{PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever}); err != nil {
		t.Fatalf("import: %v", err)
	}
	info, err := yk.KeyInfo(piv.SlotCardAuthentication)
	if err != nil {
		t.Fatal(err)
	}
	if info.Origin != piv.OriginImported || info.PINPolicy != piv.PINPolicyNever || !key.PublicKey.Equal(info.PublicKey) {
		t.Fatalf("KeyInfo = %+v", info)
	}
	priv, err := yk.PrivateKey(piv.SlotCardAuthentication, &key.PublicKey, piv.KeyAuth{})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("card authentication"))
	sig, err := priv.(crypto.Signer).Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(&key.PublicKey, h[:], sig) {
		t.Fatalf("sign with the imported key: %v", err)
	}
	if _, err := yk.Attest(piv.SlotCardAuthentication); !errors.Is(err, piv.ErrNotFound) {
		t.Fatalf("attest an imported key: %v, want ErrNotFound", err)
	}
	pub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotAuthentication, piv.Key{Algorithm: piv.AlgorithmEC384, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyCached})
	if err != nil {
		t.Fatal(err)
	}
	att, err := yk.Attest(piv.SlotAuthentication)
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	if !pub.(*ecdsa.PublicKey).Equal(att.PublicKey) {
		t.Fatal("attestation certifies another key")
	}
	ca, err := yk.AttestationCertificate()
	if err != nil {
		t.Fatalf("AttestationCertificate: %v", err)
	}
	if err := att.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("attestation not signed by the card's attestation key: %v", err)
	}
}
