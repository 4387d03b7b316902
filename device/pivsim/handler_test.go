package pivsim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/des"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
)

// tx sends one APDU given in hex to the card and splits the answer.
func tx(t *testing.T, c *Card, s *session, apdu string) ([]byte, uint16) {
	t.Helper()
	raw, err := hex.DecodeString(strings.ReplaceAll(apdu, " ", ""))
	if err != nil {
		t.Fatalf("bad test apdu %q: %v", apdu, err)
	}
	resp := c.process(context.Background(), s, raw)
	if len(resp) < 2 {
		t.Fatalf("answer %x has no status word", resp)
	}
	n := len(resp) - 2
	return resp[:n], uint16(resp[n])<<8 | uint16(resp[n+1])
}

const (
	selectPIV = "00 A4 04 00 05 A0 00 00 03 08"
	verifyPIN = "00 20 00 80 08 31 32 33 34 35 36 FF FF"
	wrongPIN  = "00 20 00 80 08 39 39 39 39 39 39 FF FF"
	pinStatus = "00 20 00 80 00"
)

// authMgmt runs the mutual authentication with the default 3DES key.
func authMgmt(t *testing.T, c *Card, s *session) {
	t.Helper()
	resp, sw := tx(t, c, s, "00 87 03 9B 04 7C 02 80 00")
	if sw != 0x9000 || len(resp) != 12 {
		t.Fatalf("witness: %x %04X", resp, sw)
	}
	block, _ := des.NewTripleDESCipher(DefaultManagementKey)
	w := make([]byte, 8)
	block.Decrypt(w, resp[4:])
	chal := []byte("chalenge")
	data := append(append([]byte{0x7C, 0x14, 0x80, 0x08}, w...), append([]byte{0x81, 0x08}, chal...)...)
	resp, sw = tx(t, c, s, "00 87 03 9B 16"+hex.EncodeToString(data))
	want := make([]byte, 8)
	block.Encrypt(want, chal)
	if sw != 0x9000 || !bytes.Equal(resp[4:], want) {
		t.Fatalf("response: %x %04X", resp, sw)
	}
}

type step struct {
	apdu string
	sw   uint16
	// data, when set, is the hex the answer must start with.
	data string
}

func TestHandler(t *testing.T) {
	cases := []struct {
		name     string
		mgmt     bool // authenticate the management key after SELECT
		slot9c   bool // a P-256 key in 9c with PIN always
		slot9a   bool // a P-256 key in 9a with PIN never
		steps    []step
		retries  int
		selected bool
	}{
		{name: "select answers the property template", steps: []step{
			{apdu: selectPIV, sw: 0x9000, data: "6111 4f0600001000 0100 7907 4f05a000000308"},
			{apdu: "00 A4 04 00 0B A0 00 00 03 08 00 00 10 00 01 00", sw: 0x9000},
		}, retries: 3},
		{name: "nothing works before select", steps: []step{
			{apdu: "00 FD 00 00", sw: 0x6D00},
			{apdu: verifyPIN, sw: 0x6D00},
			{apdu: "00 A4 04 00 05 A0 00 00 03 09", sw: 0x6A82},
		}, retries: 3},
		{name: "version serial and unknown instructions", steps: []step{
			{apdu: selectPIV, sw: 0x9000},
			{apdu: "00 FD 00 00", sw: 0x9000, data: "050403"},
			{apdu: "00 F8 00 00", sw: 0x9000, data: "00bc614e"},
			{apdu: "00 12 00 00", sw: 0x6D00},
			{apdu: "80 FD 00 00", sw: 0x6E00},
			{apdu: "00 FD", sw: 0x6700},
			{apdu: "00 20 00 80 05 31 32", sw: 0x6700},
		}, retries: 3},
		{name: "verify counts down and blocks", steps: []step{
			{apdu: selectPIV, sw: 0x9000},
			{apdu: pinStatus, sw: 0x63C3},
			{apdu: wrongPIN, sw: 0x63C2},
			{apdu: "00 20 00 80 04 31 32 33 34", sw: 0x6A80},
			{apdu: wrongPIN, sw: 0x63C1},
			{apdu: wrongPIN, sw: 0x63C0},
			{apdu: wrongPIN, sw: 0x6983},
			{apdu: verifyPIN, sw: 0x6983},
			{apdu: pinStatus, sw: 0x6983},
		}, retries: 0},
		{name: "right PIN resets the counter and P1 FF logs out", steps: []step{
			{apdu: selectPIV, sw: 0x9000},
			{apdu: wrongPIN, sw: 0x63C2},
			{apdu: verifyPIN, sw: 0x9000},
			{apdu: pinStatus, sw: 0x9000},
			{apdu: "00 20 FF 80", sw: 0x9000},
			{apdu: pinStatus, sw: 0x63C3},
			{apdu: "00 20 00 81 00", sw: 0x6A88},
		}, retries: 3},
		{name: "unblock with the PUK", steps: []step{
			{apdu: selectPIV, sw: 0x9000},
			{apdu: wrongPIN, sw: 0x63C2},
			{apdu: wrongPIN, sw: 0x63C1},
			{apdu: wrongPIN, sw: 0x63C0},
			{apdu: "00 2C 00 80 10 3837363534333231 363534333231FFFF", sw: 0x63C2},
			{apdu: "00 2C 00 80 10 3132333435363738 3635343332FFFFFF", sw: 0x6A80},
			{apdu: "00 2C 00 80 10 3132333435363738 363534333231FFFF", sw: 0x9000},
			{apdu: "00 20 00 80 08 363534333231FFFF", sw: 0x9000},
			{apdu: "00 F7 00 81", sw: 0x9000, data: "0101ff 050101 06020303"},
		}, retries: 3},
		{name: "change PIN", steps: []step{
			{apdu: selectPIV, sw: 0x9000},
			{apdu: "00 24 00 80 10 313233343536FFFF 3131313131313131", sw: 0x9000},
			{apdu: verifyPIN, sw: 0x63C2},
			{apdu: "00 20 00 80 08 3131313131313131", sw: 0x9000},
			{apdu: "00 F7 00 80", sw: 0x9000, data: "0101ff 050100 06020303"},
		}, retries: 3},
		{name: "management metadata and key operations need authentication", steps: []step{
			{apdu: selectPIV, sw: 0x9000},
			{apdu: "00 F7 00 9B", sw: 0x9000, data: "010103 02020001 050101"},
			{apdu: "00 47 00 9A 05 AC 03 80 01 11", sw: 0x6982},
			{apdu: "00 DB 3F FF 0A 5C 03 5F C1 05 53 03 70 01 00", sw: 0x6982},
			{apdu: "00 87 03 9B 16 7C 14 80 08 0000000000000000 81 08 0000000000000000", sw: 0x6A80},
			{apdu: "00 87 0A 9B 04 7C 02 80 00", sw: 0x6A86},
		}, retries: 3},
		{name: "generate and sign with PIN policy never", mgmt: true, steps: []step{
			{apdu: "00 47 00 9A 0B AC 09 80 01 11 AA 01 01 AB 01 01", sw: 0x9000, data: "7f4943 8641 04"},
			{apdu: "00 F7 00 9A", sw: 0x9000, data: "010111 02020101 030101 0443 8641 04"},
			{apdu: "00 87 11 9A 26 7C 24 82 00 81 20" + strings.Repeat("ab", 32), sw: 0x9000, data: "7c"},
			{apdu: "00 87 14 9A 26 7C 24 82 00 81 20" + strings.Repeat("ab", 32), sw: 0x6A86},
			{apdu: "00 87 11 9A 27 7C 25 82 00 81 21" + strings.Repeat("ab", 33), sw: 0x6A80},
			{apdu: "00 87 11 9A 04 7C 02 82 00", sw: 0x6A80},
			{apdu: "00 87 11 9D 26 7C 24 82 00 81 20" + strings.Repeat("ab", 32), sw: 0x6A82},
			{apdu: "00 47 00 9A 05 AC 03 80 01 42", sw: 0x6A80},
			{apdu: "00 47 00 9B 05 AC 03 80 01 11", sw: 0x6A86},
		}, retries: 3},
		{name: "PIN policy always is spent by one signature", slot9c: true, steps: []step{
			{apdu: selectPIV, sw: 0x9000},
			{apdu: "00 87 11 9C 26 7C 24 82 00 81 20" + strings.Repeat("01", 32), sw: 0x6982},
			{apdu: verifyPIN, sw: 0x9000},
			{apdu: "00 87 11 9C 26 7C 24 82 00 81 20" + strings.Repeat("01", 32), sw: 0x9000},
			{apdu: "00 87 11 9C 26 7C 24 82 00 81 20" + strings.Repeat("01", 32), sw: 0x6982},
			{apdu: "00 F7 00 9C", sw: 0x9000, data: "010111 02020301 030101"},
		}, retries: 3},
		{name: "objects", mgmt: true, steps: []step{
			{apdu: "00 CB 3F FF 03 5C 01 7E", sw: 0x9000, data: "7e12 4f0ba0000003080000100001 00 5f2f024000"},
			{apdu: "00 CB 3F FF 05 5C 03 5F C1 05", sw: 0x6A82},
			{apdu: "00 CB 3F FF 05 5C 03 5F C1 02", sw: 0x9000, data: "53"},
			{apdu: "00 DB 3F FF 0C 5C 03 5F C1 05 53 05 70 01 AA 71 00", sw: 0x9000},
			{apdu: "00 CB 3F FF 05 5C 03 5F C1 05", sw: 0x9000, data: "5305 7001aa 7100"},
			{apdu: "00 DB 3F FF 07 5C 03 5F C1 05 53 00", sw: 0x9000},
			{apdu: "00 CB 3F FF 05 5C 03 5F C1 05", sw: 0x6A82},
			{apdu: "00 DB 3F FF 06 5C 01 7E 53 01 00", sw: 0x6A80},
			{apdu: "00 CB 3F FE 05 5C 03 5F C1 05", sw: 0x6A86},
			{apdu: "00 CB 3F FF 04 5C 03 5F C1", sw: 0x6A80},
			{apdu: "00 DB 3F FF 09 5C 03 5F C1 09 53 02 88 00", sw: 0x9000},
			{apdu: "00 CB 3F FF 05 5C 03 5F C1 09", sw: 0x6982},
			{apdu: verifyPIN, sw: 0x9000},
			{apdu: "00 CB 3F FF 05 5C 03 5F C1 09", sw: 0x9000, data: "53028800"},
		}, retries: 3},
		{name: "chaining", mgmt: true, steps: []step{
			{apdu: "10 DB 3F FF 07 5C 03 5F C1 05 53 05", sw: 0x9000},
			{apdu: "10 DB 3F FF 02 70 01", sw: 0x9000},
			{apdu: "00 DB 3F FF 03 BB 71 00", sw: 0x9000},
			{apdu: "00 CB 3F FF 05 5C 03 5F C1 05", sw: 0x9000, data: "5305 7001bb 7100"},
			// A chain broken by another command is dropped.
			{apdu: "10 DB 3F FF 07 5C 03 5F C1 05 53 05", sw: 0x9000},
			{apdu: "00 FD 00 00", sw: 0x9000},
			{apdu: "00 DB 3F FF 05 70 01 CC 71 00", sw: 0x6A80},
		}, retries: 3},
		{name: "get response without pending data", steps: []step{
			{apdu: selectPIV, sw: 0x9000},
			{apdu: "00 C0 00 00 00", sw: 0x6985},
		}, retries: 3},
		{name: "set management key to AES-192", mgmt: true, steps: []step{
			{apdu: "00 FF FF FF 1B 0A 9B 18" + strings.Repeat("11", 24), sw: 0x9000},
			{apdu: "00 F7 00 9B", sw: 0x9000, data: "01010a 02020001 050100"},
			{apdu: "00 FF FF FF 1B 08 9B 18" + strings.Repeat("11", 24), sw: 0x6A80},
		}, retries: 3},
		{name: "reset needs PIN and PUK blocked", steps: []step{
			{apdu: selectPIV, sw: 0x9000},
			{apdu: "00 FB 00 00", sw: 0x6985},
			{apdu: wrongPIN, sw: 0x63C2},
			{apdu: wrongPIN, sw: 0x63C1},
			{apdu: wrongPIN, sw: 0x63C0},
			{apdu: "00 24 00 81 10 3030303030303030 3030303030303030", sw: 0x63C2},
			{apdu: "00 24 00 81 10 3030303030303030 3030303030303030", sw: 0x63C1},
			{apdu: "00 24 00 81 10 3030303030303030 3030303030303030", sw: 0x63C0},
			{apdu: "00 FB 00 00", sw: 0x9000},
			{apdu: verifyPIN, sw: 0x9000},
		}, retries: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{Serial: 12345678})
			if err != nil {
				t.Fatal(err)
			}
			if tc.slot9c {
				if _, err := c.GenerateKey(SlotSignature, AlgECCP256, PINPolicyAlways, TouchPolicyNever); err != nil {
					t.Fatal(err)
				}
			}
			var s session
			if tc.mgmt {
				tx(t, c, &s, selectPIV)
				authMgmt(t, c, &s)
			}
			for i, st := range tc.steps {
				data, sw := tx(t, c, &s, st.apdu)
				if sw != st.sw {
					t.Fatalf("step %d %s: status %04X, want %04X (data %x)", i, st.apdu, sw, st.sw, data)
				}
				want, _ := hex.DecodeString(strings.ReplaceAll(st.data, " ", ""))
				if !bytes.HasPrefix(data, want) {
					t.Fatalf("step %d %s: data %x, want prefix %x", i, st.apdu, data, want)
				}
			}
			if got := c.PINRetries(); got != tc.retries {
				t.Fatalf("PINRetries() = %d, want %d", got, tc.retries)
			}
		})
	}
}

func TestGetResponse(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	der := bytes.Repeat([]byte{0x5A}, 700)
	if err := c.SetCertificate(SlotSignature, der); err != nil {
		t.Fatal(err)
	}
	var s session
	tx(t, c, &s, selectPIV)
	var got []byte
	data, sw := tx(t, c, &s, "00 CB 3F FF 05 5C 03 5F C1 0A")
	got = append(got, data...)
	for sw>>8 == 0x61 {
		if len(data) != 256 {
			t.Fatalf("chunk of %d bytes before 61xx", len(data))
		}
		data, sw = tx(t, c, &s, "00 C0 00 00 00")
		got = append(got, data...)
	}
	if sw != 0x9000 {
		t.Fatalf("status %04X", sw)
	}
	want := appendTLV(nil, 0x53, appendTLV(appendTLV(appendTLV(nil, 0x70, der), 0x71, []byte{0}), 0xFE, nil))
	if !bytes.Equal(got, want) {
		t.Fatalf("reassembled %d bytes, want %d", len(got), len(want))
	}
	// An extended APDU gets the whole object at once.
	data, sw = tx(t, c, &s, "00 CB 3F FF 00 00 05 5C 03 5F C1 0A 00 00")
	if sw != 0x9000 || !bytes.Equal(data, want) {
		t.Fatalf("extended: %d bytes, %04X", len(data), sw)
	}
}

func TestSessionReset(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var s session
	tx(t, c, &s, selectPIV)
	tx(t, c, &s, verifyPIN)
	authMgmt(t, c, &s)
	s.reset() // what vpcd power off, power on and reset do
	if _, sw := tx(t, c, &s, pinStatus); sw != 0x6D00 {
		t.Fatalf("after reset without select: %04X, want 6D00", sw)
	}
	tx(t, c, &s, selectPIV)
	if _, sw := tx(t, c, &s, pinStatus); sw != 0x63C3 {
		t.Fatalf("PIN status after reset: %04X, want 63C3", sw)
	}
	if _, sw := tx(t, c, &s, "00 47 00 9A 05 AC 03 80 01 11"); sw != 0x6982 {
		t.Fatalf("generate after reset: %04X, want 6982", sw)
	}
}

func TestImportRSA(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	key.Precompute()
	var data []byte
	for i, v := range []*big.Int{key.Primes[0], key.Primes[1], key.Precomputed.Dp, key.Precomputed.Dq, key.Precomputed.Qinv} {
		data = appendTLV(data, uint32(i+1), v.FillBytes(make([]byte, 128)))
	}
	data = appendTLV(data, 0xAA, []byte{byte(PINPolicyNever)})
	c, _ := New(Config{})
	var s session
	tx(t, c, &s, selectPIV)
	authMgmt(t, c, &s)
	n := len(data)
	apdu := hex.EncodeToString(append([]byte{0x00, 0xFE, 0x07, 0x9D, 0x00, byte(n >> 8), byte(n)}, data...))
	if _, sw := tx(t, c, &s, apdu); sw != 0x9000 {
		t.Fatalf("import: %04X", sw)
	}
	h := sha256.Sum256([]byte("nota dinas"))
	// The host pads (PKCS#1 v1.5 with the SHA-256 DigestInfo); the card
	// only exponentiates.
	prefix, _ := hex.DecodeString("3031300d060960864801650304020105000420")
	block := append([]byte{0x00, 0x01}, bytes.Repeat([]byte{0xFF}, 256-3-len(prefix)-32)...)
	block = append(append(append(block, 0x00), prefix...), h[:]...)
	tpl := appendTLV(nil, 0x7C, appendTLV([]byte{0x82, 0x00}, 0x81, block))
	resp, sw := tx(t, c, &s, hex.EncodeToString(append([]byte{0x00, 0x87, 0x07, 0x9D, 0x00, byte(len(tpl) >> 8), byte(len(tpl))}, tpl...)))
	if sw != 0x9000 {
		t.Fatalf("sign: %04X", sw)
	}
	outer, _, err := parseTLV(resp)
	if err != nil {
		t.Fatal(err)
	}
	sig, _, err := parseTLV(outer.value)
	if err != nil || sig.tag != 0x82 {
		t.Fatalf("response %x: %v", resp, err)
	}
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, h[:], sig.value); err != nil {
		t.Fatalf("signature: %v", err)
	}
	// A block not smaller than the modulus is refused.
	tpl = appendTLV(nil, 0x7C, appendTLV([]byte{0x82, 0x00}, 0x81, bytes.Repeat([]byte{0xFF}, 256)))
	if _, sw := tx(t, c, &s, hex.EncodeToString(append([]byte{0x00, 0x87, 0x07, 0x9D, 0x00, byte(len(tpl) >> 8), byte(len(tpl))}, tpl...))); sw != 0x6A80 {
		t.Fatalf("oversized block: %04X, want 6A80", sw)
	}
}
