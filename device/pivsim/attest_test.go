package pivsim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/asn1"
	"path/filepath"
	"testing"
)

// attestChain attests slot through ATTEST and returns leaf and f9.
func attestChain(t *testing.T, c *Card, slot string) (leaf, intermediate *x509.Certificate) {
	t.Helper()
	s := &session{}
	if _, st := tx(t, c, s, selectPIV); st != 0x9000 {
		t.Fatalf("select: %04x", st)
	}
	der, st := tx(t, c, s, "00 F9 "+slot+" 00 00 00 00")
	if st != 0x9000 {
		t.Fatalf("attest %s: %04x", slot, st)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	obj, st := tx(t, c, s, "00 CB 3F FF 00 00 05 5C 03 5F FF 01 00 00")
	if st != 0x9000 {
		t.Fatalf("read f9 certificate: %04x", st)
	}
	ts, err := parseTLVs(obj)
	if err != nil {
		t.Fatal(err)
	}
	inner, _ := findTLV(ts, 0x53)
	ts, err = parseTLVs(inner)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := findTLV(ts, 0x70)
	intermediate, err = x509.ParseCertificate(raw)
	if err != nil {
		t.Fatal(err)
	}
	return leaf, intermediate
}

func verifyChain(t *testing.T, leaf, intermediate, root *x509.Certificate) {
	t.Helper()
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inter.AddCert(intermediate)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("attestation chain: %v", err)
	}
}

// TestAttestation: leaf ← f9 ← root, with Yubico's four extensions; the
// root survives Save and Load and the f9 key a RESET.
func TestAttestation(t *testing.T) {
	c, err := New(Config{Serial: 99, Version: [3]byte{5, 7, 1}, FormFactor: 0x03})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := c.GenerateKey(SlotSignature, AlgEd25519, PINPolicyAlways, TouchPolicyCached)
	if err != nil {
		t.Fatal(err)
	}
	leaf, intermediate := attestChain(t, c, "9C")
	root, err := c.AttestationRoot()
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, leaf, intermediate, root)
	if !pub.(ed25519.PublicKey).Equal(leaf.PublicKey) {
		t.Fatal("attestation of another key")
	}
	serial, _ := asn1.Marshal(99)
	want := map[string][]byte{
		oidFirmware.String():   {5, 7, 1},
		oidSerial.String():     serial,
		oidPolicy.String():     {byte(PINPolicyAlways), byte(TouchPolicyCached)},
		oidFormFactor.String(): {0x03},
	}
	for _, e := range leaf.Extensions {
		if w, ok := want[e.Id.String()]; ok {
			if !bytes.Equal(e.Value, w) {
				t.Errorf("extension %s = % x, want % x", e.Id, e.Value, w)
			}
			delete(want, e.Id.String())
		}
	}
	if len(want) != 0 {
		t.Errorf("extensions missing: %v", want)
	}

	path := filepath.Join(t.TempDir(), "card.json")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	c2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	root2, err := c2.AttestationRoot()
	if err != nil {
		t.Fatal(err)
	}
	if !root2.Equal(root) {
		t.Fatal("attestation root changed across Save and Load")
	}
	leaf2, intermediate2 := attestChain(t, c2, "9C")
	verifyChain(t, leaf2, intermediate2, root)
	if !intermediate2.Equal(intermediate) {
		t.Error("f9 certificate changed across Save and Load")
	}

	// RESET needs PIN and PUK blocked; it keeps the factory's f9.
	s := &session{}
	tx(t, c2, s, selectPIV)
	for range 3 {
		tx(t, c2, s, wrongPIN)
		tx(t, c2, s, "00 2C 00 80 10 39 39 39 39 39 39 39 39 31 32 33 34 35 36 FF FF")
	}
	if _, st := tx(t, c2, s, "00 FB 00 00"); st != 0x9000 {
		t.Fatalf("reset: %04x", st)
	}
	if _, err := c2.GenerateKey(SlotSignature, AlgECCP256, PINPolicyAlways, TouchPolicyNever); err != nil {
		t.Fatal(err)
	}
	leaf3, intermediate3 := attestChain(t, c2, "9C")
	verifyChain(t, leaf3, intermediate3, root)
	if !intermediate3.Equal(intermediate) {
		t.Error("f9 certificate changed by RESET")
	}
}

// TestFirmwareFeatures: Ed25519 only from 5.7, GET METADATA only from 5.3,
// and the management application's device information.
func TestFirmwareFeatures(t *testing.T) {
	old, err := New(Config{Serial: 1, Version: [3]byte{5, 2, 7}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.GenerateKey(SlotSignature, AlgEd25519, PINPolicyAlways, TouchPolicyNever); err == nil {
		t.Error("ed25519 generated on 5.2.7")
	}
	s := &session{}
	tx(t, old, s, selectPIV)
	if _, st := tx(t, old, s, "00 F7 00 80 00"); st != 0x6D00 {
		t.Errorf("get metadata on 5.2.7: %04x, want 6D00", st)
	}
	authMgmt(t, old, s)
	if _, st := tx(t, old, s, "00 47 00 9A 05 AC 03 80 01 E0"); st != 0x6A80 {
		t.Errorf("generate ed25519 on 5.2.7: %04x, want 6A80", st)
	}

	c, err := New(Config{Serial: 0x01020304, Version: [3]byte{5, 7, 1}})
	if err != nil {
		t.Fatal(err)
	}
	s = &session{}
	sel, st := tx(t, c, s, "00 A4 04 00 08 A0 00 00 05 27 47 11 17")
	if st != 0x9000 || string(sel) != "Virtual mgr - FW version 5.7.1" {
		t.Fatalf("select management: %q %04x", sel, st)
	}
	info, st := tx(t, c, s, "00 1D 00 00 00")
	if st != 0x9000 || len(info) == 0 || int(info[0]) != len(info)-1 {
		t.Fatalf("read config: % x %04x", info, st)
	}
	ts, err := parseTLVs(info[1:])
	if err != nil {
		t.Fatal(err)
	}
	for tag, want := range map[uint32][]byte{tagFormFactor: {FormFactorUSBAKeychain}, tagDevSerial: {1, 2, 3, 4}, tagDevVersion: {5, 7, 1}} {
		if v, _ := findTLV(ts, tag); !bytes.Equal(v, want) {
			t.Errorf("device info %02x = % x, want % x", tag, v, want)
		}
	}
	// PIV commands need PIV selected again.
	if _, st := tx(t, c, s, "00 FD 00 00"); st != 0x6D00 {
		t.Errorf("get version with management selected: %04x", st)
	}
	tx(t, c, s, selectPIV)
	if v, st := tx(t, c, s, "00 FD 00 00"); st != 0x9000 || !bytes.Equal(v, []byte{5, 7, 1}) {
		t.Errorf("get version: % x %04x", v, st)
	}
}
