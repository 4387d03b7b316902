package device

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseMetadata(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want refMetadata
		ok   bool
	}{
		{"pin default", []byte{0x01, 0x01, 0xff, 0x05, 0x01, 0x01, 0x06, 0x02, 0x03, 0x03},
			refMetadata{algorithm: 0xff, isDefault: true, hasDefault: true, retriesTotal: 3, retriesLeft: 3, hasRetries: true}, true},
		{"puk changed", []byte{0x01, 0x01, 0xff, 0x05, 0x01, 0x00, 0x06, 0x02, 0x05, 0x01},
			refMetadata{algorithm: 0xff, hasDefault: true, retriesTotal: 5, retriesLeft: 1, hasRetries: true}, true},
		{"management key", []byte{0x01, 0x01, 0x0a, 0x02, 0x02, 0x00, 0x01, 0x05, 0x01, 0x00},
			refMetadata{algorithm: 0x0a, hasDefault: true}, true},
		{"unknown object skipped", []byte{0x01, 0x01, 0x03, 0x07, 0x01, 0x80, 0x05, 0x01, 0x01},
			refMetadata{algorithm: 0x03, isDefault: true, hasDefault: true}, true},
		{"length beyond data", []byte{0x01, 0x01, 0x03, 0x07, 0x81, 0x80, 0x05, 0x01, 0x01}, refMetadata{}, false},
		{"long form length", []byte{0x01, 0x81, 0x01, 0x03}, refMetadata{}, false},
		{"default value 2", []byte{0x01, 0x01, 0xff, 0x05, 0x01, 0x02}, refMetadata{}, false},
		{"left above total", []byte{0x01, 0x01, 0xff, 0x06, 0x02, 0x03, 0x04}, refMetadata{}, false},
		{"twice", []byte{0x01, 0x01, 0xff, 0x01, 0x01, 0xff}, refMetadata{}, false},
		{"truncated", []byte{0x01, 0x02, 0xff}, refMetadata{}, false},
		{"no algorithm", []byte{0x05, 0x01, 0x01}, refMetadata{}, false},
		{"empty", nil, refMetadata{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMetadata(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("parseMetadata(% x) = %+v, %v; want ok %v", tc.in, got, err, tc.ok)
			}
			if tc.ok && got != tc.want {
				t.Fatalf("parseMetadata(% x) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// fakeCard answers APDUs from a table, keyed by INS and P2.
type fakeCard map[[2]byte][]byte

func (f fakeCard) transmit(apdu []byte) ([]byte, error) {
	if r, ok := f[[2]byte{apdu[1], apdu[3]}]; ok {
		return r, nil
	}
	return []byte{0x6d, 0x00}, nil
}

func TestReadCredentialsOn(t *testing.T) {
	ok := []byte{0x90, 0x00}
	pin := append([]byte{0x01, 0x01, 0xff, 0x05, 0x01, 0x00, 0x06, 0x02, 0x03, 0x02}, ok...)
	puk := append([]byte{0x01, 0x01, 0xff, 0x05, 0x01, 0x01, 0x06, 0x02, 0x03, 0x03}, ok...)
	mgm := append([]byte{0x01, 0x01, 0x03, 0x02, 0x02, 0x00, 0x01, 0x05, 0x01, 0x01}, ok...)
	full := fakeCard{{0xa4, 0x00}: ok, {0xf7, 0x80}: pin, {0xf7, 0x81}: puk, {0xf7, 0x9b}: mgm}
	creds, err := readCredentialsOn(full)
	if err != nil {
		t.Fatal(err)
	}
	if d := creds.defaults(); d != (Defaults{Known: true, PUK: true, ManagementKey: true}) || creds.pukRetries() != 3 {
		t.Errorf("defaults %+v puk retries %d", d, creds.pukRetries())
	}
	for name, c := range map[string]fakeCard{
		"6D00": {{0xa4, 0x00}: ok},
		"6A81": {{0xa4, 0x00}: ok, {0xf7, 0x80}: {0x6a, 0x81}},
		"6A86": {{0xa4, 0x00}: ok, {0xf7, 0x80}: {0x6a, 0x86}}, // another maker's PIV card
		"6E00": {{0xa4, 0x00}: ok, {0xf7, 0x80}: {0x6e, 0x00}},
	} {
		creds, err := readCredentialsOn(c)
		if err != nil || creds.known || creds.defaults() != (Defaults{}) || creds.pukRetries() != -1 {
			t.Errorf("%s: %+v %v, want unknown", name, creds, err)
		}
	}
	bad := fakeCard{{0xa4, 0x00}: ok, {0xf7, 0x80}: pin, {0xf7, 0x81}: {0x69, 0x82}}
	if _, err := readCredentialsOn(bad); err == nil || errors.Is(err, errNoMetadata) {
		t.Errorf("6982 for the puk: %v, want an error", err)
	}
	noRetries := fakeCard{{0xa4, 0x00}: ok, {0xf7, 0x80}: append([]byte{0x01, 0x01, 0xff, 0x05, 0x01, 0x00}, ok...)}
	if _, err := readCredentialsOn(noRetries); err == nil {
		t.Errorf("pin metadata without retries accepted")
	}
}

func TestProtectedAdminData(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in, out []byte
	}{
		{"none", nil, []byte{0x80, 0x03, 0x81, 0x01, 0x02}},
		{"puk blocked kept", []byte{0x80, 0x03, 0x81, 0x01, 0x01}, []byte{0x80, 0x03, 0x81, 0x01, 0x03}},
		{"salt dropped, timestamp kept", []byte{0x80, 0x0c, 0x82, 0x04, 1, 2, 3, 4, 0x83, 0x04, 5, 6, 7, 8},
			[]byte{0x80, 0x09, 0x81, 0x01, 0x02, 0x83, 0x04, 5, 6, 7, 8}},
	} {
		got, err := protectedAdminData(tc.in)
		if err != nil || !bytes.Equal(got, tc.out) {
			t.Errorf("%s: % x, %v; want % x", tc.name, got, err, tc.out)
		}
	}
	for _, bad := range [][]byte{{0x81, 0x00}, {0x80, 0x03, 0x81, 0x02, 0x00}, {0x80, 0x06, 0x81, 0x01, 0, 0x81, 0x01, 0}, {0x80, 0x00, 0x00}} {
		if got, err := protectedAdminData(bad); err == nil {
			t.Errorf("% x accepted as % x", bad, got)
		}
	}
}

// FuzzParseMetadata: whatever parses re-encodes canonically to the same
// metadata, and nothing panics.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte{0x01, 0x01, 0xff, 0x05, 0x01, 0x01, 0x06, 0x02, 0x03, 0x03})
	f.Add([]byte{0x01, 0x01, 0x0a, 0x02, 0x02, 0x00, 0x01, 0x05, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := parseMetadata(b)
		if err != nil {
			return
		}
		enc := appendTLV(nil, mdAlgorithm, []byte{md.algorithm})
		if md.hasDefault {
			enc = appendTLV(enc, mdDefault, []byte{boolByte(md.isDefault)})
		}
		if md.hasRetries {
			if md.retriesLeft > md.retriesTotal || md.retriesTotal > 15 {
				t.Fatalf("retries %d/%d accepted", md.retriesLeft, md.retriesTotal)
			}
			enc = appendTLV(enc, mdRetries, []byte{byte(md.retriesTotal), byte(md.retriesLeft)})
		}
		again, err := parseMetadata(enc)
		if err != nil || again != md {
			t.Fatalf("% x parsed as %+v; canonical % x parses as %+v, %v", b, md, enc, again, err)
		}
	})
}

// FuzzAdminData: admin data read from a card either is refused or comes out
// with the protected flag set, parses again, and is a fixed point.
func FuzzAdminData(f *testing.F) {
	f.Add([]byte{0x53, 0x05, 0x80, 0x03, 0x81, 0x01, 0x01})
	f.Add([]byte{0x53, 0x0e, 0x80, 0x0c, 0x82, 0x04, 1, 2, 3, 4, 0x83, 0x04, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, resp []byte) {
		old, err := unwrapObject(resp)
		if err != nil {
			return
		}
		out, err := protectedAdminData(old)
		if err != nil {
			return
		}
		again, err := protectedAdminData(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("% x gave % x, which gives % x, %v", old, out, again, err)
		}
		if len(out) < 5 || out[2] != 0x81 || out[4]&adminFlagProtected == 0 {
			t.Fatalf("% x: flag not set", out)
		}
	})
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
