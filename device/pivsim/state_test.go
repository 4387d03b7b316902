package pivsim

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token.json")
	c, err := New(Config{Serial: 99, Version: [3]byte{5, 7, 1}, PIN: "24681357", PINRetries: 5})
	if err != nil {
		t.Fatal(err)
	}
	pubs := map[byte]any{}
	for slot, alg := range map[byte]Algorithm{SlotAuthentication: AlgECCP256, SlotSignature: AlgECCP384, SlotKeyManagement: AlgRSA2048} {
		if pubs[slot], err = c.GenerateKey(slot, alg, PINPolicyDefault, TouchPolicyDefault); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetCertificate(SlotSignature, []byte{0x30, 0x00}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, %v; want 0600", fi.Mode(), err)
	}
	// Changes after Save land in the file without another Save.
	var s session
	tx(t, c, &s, selectPIV)
	if _, sw := tx(t, c, &s, wrongPIN); sw != 0x63C4 {
		t.Fatalf("wrong PIN: %04X", sw)
	}

	l, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Serial() != 99 || l.version != [3]byte{5, 7, 1} || l.PINRetries() != 4 || l.pinMax != 5 {
		t.Fatalf("loaded serial %d version %v retries %d/%d", l.Serial(), l.version, l.PINRetries(), l.pinMax)
	}
	if der, err := l.Certificate(SlotSignature); err != nil || string(der) != "\x30\x00" {
		t.Fatalf("certificate %x, %v", der, err)
	}
	for slot, pub := range pubs {
		k := l.keys[slot]
		if k == nil {
			t.Fatalf("slot %x lost", slot)
		}
		if !k.signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Fatalf("slot %x has another key", slot)
		}
	}
	if l.keys[SlotSignature].pin != PINPolicyAlways || l.keys[SlotAuthentication].pin != PINPolicyOnce {
		t.Fatal("policies not kept")
	}
	// The loaded card checks the PIN it was given.
	var s2 session
	tx(t, l, &s2, selectPIV)
	if _, sw := tx(t, l, &s2, "00 20 00 80 08 3234363831333537"); sw != 0x9000 {
		t.Fatalf("PIN after load: %04X", sw)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"not json":      "{",
		"short pin":     `{"pin":"MTIz","puk":"MTIzNDU2Nzg=","pin_retries":3,"puk_retries":3,"management_key_algorithm":3,"management_key":"AQIDBAUGBwgBAgMEBQYHCAECAwQFBgcI"}`,
		"bad mgmt key":  `{"pin":"MTIzNDU2//8=","puk":"MTIzNDU2Nzg=","pin_retries":3,"puk_retries":3,"management_key_algorithm":12,"management_key":"AQIDBAUGBwgBAgMEBQYHCAECAwQFBgcI"}`,
		"retries range": `{"pin":"MTIzNDU2//8=","puk":"MTIzNDU2Nzg=","pin_retries":3,"pin_retries_left":4,"puk_retries":3,"management_key_algorithm":3,"management_key":"AQIDBAUGBwgBAgMEBQYHCAECAwQFBgcI"}`,
		"bad key":       `{"pin":"MTIzNDU2//8=","puk":"MTIzNDU2Nzg=","pin_retries":3,"puk_retries":3,"management_key_algorithm":3,"management_key":"AQIDBAUGBwgBAgMEBQYHCAECAwQFBgcI","keys":{"9a":{"algorithm":17,"pkcs8":"AAAA"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(p); err == nil {
				t.Fatal("Load accepted a bad file")
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

func TestProvisionDemo(t *testing.T) {
	dir := t.TempDir()
	o := Official{Name: "Budi Santoso", NIP: "198503302010011001"}
	d, err := ProvisionDemo(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	der, err := d.Card.Certificate(SlotSignature)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(der)
	if d.CertSHA256 != hex.EncodeToString(h[:]) {
		t.Fatal("CertSHA256 is not the hash of the 9c certificate")
	}
	if cert.Subject.CommonName != o.Name || cert.Subject.SerialNumber != o.NIP ||
		!slices.Equal(cert.Subject.Country, []string{"ID"}) || len(cert.Subject.Organization) != 1 {
		t.Fatalf("subject %v", cert.Subject)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment {
		t.Fatalf("key usage %v", cert.KeyUsage)
	}
	if years := cert.NotAfter.Sub(cert.NotBefore).Hours() / 24 / 365; years < 1.99 || years > 2.01 {
		t.Fatalf("validity %.2f years", years)
	}
	caPEM, err := os.ReadFile(d.CACertPath)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("9c certificate not issued by the demo CA: %v", err)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(d.Card.keys[SlotSignature].signer.Public()) {
		t.Fatal("9c certificate is for another key")
	}
	if d.Card.keys[SlotSignature].pin != PINPolicyAlways || d.Card.keys[SlotAuthentication].pin != PINPolicyOnce {
		t.Fatal("demo PIN policies")
	}
	if _, err := d.Card.Certificate(SlotAuthentication); err != nil {
		t.Fatalf("9a certificate: %v", err)
	}
	for _, p := range []string{d.CAKeyPath, d.StatePath} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", p, fi.Mode(), err)
		}
	}
	again, err := ProvisionDemo(dir, Official{})
	if err != nil {
		t.Fatal(err)
	}
	if again.CertSHA256 != d.CertSHA256 || again.Card.Serial() != d.Card.Serial() {
		t.Fatal("second ProvisionDemo made a new token instead of loading")
	}
	// The attestation root beside the state is the card's, and stays so.
	rootPEM, err := os.ReadFile(d.AttestationRootPath)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(rootPEM)
	root, err := again.Card.AttestationRoot()
	if err != nil || blk == nil || !bytes.Equal(blk.Bytes, root.Raw) {
		t.Fatalf("attestation root file is not the loaded card's root: %v", err)
	}
}
