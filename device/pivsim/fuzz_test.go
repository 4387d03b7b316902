package pivsim

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

var fuzzKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

// script packs APDUs for FuzzAPDU: each is a length byte then the bytes.
func script(apdus ...string) []byte {
	var out []byte
	for _, a := range apdus {
		b, _ := hex.DecodeString(a)
		out = append(out, byte(len(b)))
		out = append(out, b...)
	}
	return out
}

// FuzzAPDU sends a script of command APDUs to a selected card whose
// management key is authenticated when auth is set: whatever the host
// sends, the card answers with a status word and never panics.
func FuzzAPDU(f *testing.F) {
	f.Add(false, script("00A4040005A000000308", "0020008008313233343536FFFF", "00200080"))
	f.Add(true, script("0047009A05AC03800111", "0087119A267C2482008120"+string(bytes.Repeat([]byte("ab"), 32))))
	f.Add(true, script("10DB3FFF075C035FC1055305", "00DB3FFF05700101710000", "00CB3FFF055C035FC105", "00C0000000"))
	f.Add(true, script("00FFFFFF1B0A9B18"+string(bytes.Repeat([]byte("11"), 24)), "00F7009B"))
	f.Fuzz(func(t *testing.T, auth bool, in []byte) {
		c, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ImportKey(SlotAuthentication, fuzzKey, PINPolicyOnce, TouchPolicyNever); err != nil {
			t.Fatal(err)
		}
		var s session
		c.process(context.Background(), &s, []byte{0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08})
		s.mgmtAuthed = auth
		for len(in) > 0 {
			n := int(in[0])
			in = in[1:]
			if n > len(in) {
				n = len(in)
			}
			raw := in[:n]
			in = in[n:]
			resp := c.process(context.Background(), &s, raw)
			if len(resp) < 2 {
				t.Fatalf("answer %x to %x has no status word", resp, raw)
			}
			if sw1 := resp[len(resp)-2]; sw1 != 0x90 && sw1 != 0x61 && len(resp) != 2 {
				t.Fatalf("error %x came with data", resp)
			}
			if len(resp) > shortNe+2 {
				t.Fatalf("short APDU %x got %d bytes", raw, len(resp))
			}
		}
	})
}

// FuzzTLV checks that what parseTLVs accepts encodes back to objects that
// parse the same.
func FuzzTLV(f *testing.F) {
	f.Add([]byte{0x7C, 0x02, 0x80, 0x00})
	f.Add([]byte{0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x81, 0x01, 0x00})
	f.Add([]byte{0x7F, 0x49, 0x82, 0x00, 0x01, 0x86})
	f.Fuzz(func(t *testing.T, in []byte) {
		ts, err := parseTLVs(in)
		if err != nil {
			return
		}
		var out []byte
		for _, x := range ts {
			out = appendTLV(out, x.tag, x.value)
		}
		back, err := parseTLVs(out)
		if err != nil || len(back) != len(ts) {
			t.Fatalf("re-encoded %x does not parse: %v", out, err)
		}
		for i := range ts {
			if back[i].tag != ts[i].tag || !bytes.Equal(back[i].value, ts[i].value) {
				t.Fatalf("object %d changed: %x/%x -> %x/%x", i, ts[i].tag, ts[i].value, back[i].tag, back[i].value)
			}
		}
	})
}

// FuzzState feeds arbitrary token files to the loader: it refuses or
// yields a card that saves and loads again.
func FuzzState(f *testing.F) {
	c, _ := New(Config{Serial: 7})
	_ = c.ImportKey(SlotSignature, fuzzKey, PINPolicyAlways, TouchPolicyNever)
	seed := f.TempDir() + "/seed.json"
	if err := c.Save(seed); err != nil {
		f.Fatal(err)
	}
	saved, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"serial":1,"pin":"MTIzNDU2//8=","puk":"MTIzNDU2Nzg=","pin_retries":3,"pin_retries_left":3,"puk_retries":3,"puk_retries_left":3,"management_key_algorithm":3,"management_key":"AQIDBAUGBwgBAgMEBQYHCAECAwQFBgcI"}`))
	f.Add(saved)
	f.Fuzz(func(t *testing.T, in []byte) {
		var st fileState
		if json.Unmarshal(in, &st) != nil {
			return
		}
		c, err := fromFile(&st)
		if err != nil {
			return
		}
		path := t.TempDir() + "/token.json"
		if err := c.Save(path); err != nil {
			t.Fatalf("save a loaded card: %v", err)
		}
		if _, err := Load(path); err != nil {
			t.Fatalf("load a saved card: %v", err)
		}
	})
}
