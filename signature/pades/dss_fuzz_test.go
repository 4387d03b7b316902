package pades

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// dssSeeds are small documents with a DSS of every shape readDSS meets:
// streams plain and deflated, a VRI direct and indirect, and the broken
// forms it must refuse.
func dssSeeds(t testing.TB) [][]byte {
	t.Helper()
	seeds := [][]byte{
		testPDFWith(1, "/DSS 6 0 R", "",
			"<< /Type /DSS /Certs [7 0 R] /OCSPs [7 0 R] /CRLs [8 0 R] /VRI << /0123456789ABCDEF0123456789ABCDEF01234567 << /Cert [7 0 R] /TU (D:20261202000000Z) >> >> >>",
			"<< /Length 4 >>\nstream\n0\x03\x02\x01\nendstream",
			"<< /Length 16 /Filter /FlateDecode >>\nstream\nx\x9c3\x10\x00\x00\x00b\x00b\x00\x00\x00\x00\x00\x00\nendstream"),
		testPDFWith(1, "/DSS 6 0 R /Extensions << /ESIC << /BaseVersion /1.7 /ExtensionLevel 5 >> >>", "",
			"<< /Certs [7 0 R] /VRI 8 0 R >>",
			"<< /Length 3 >>\nstream\nabc\nendstream",
			"<< /ABCDEF0123456789ABCDEF0123456789ABCDEF01 << /OCSP [] >> >>"),
		testPDFWith(1, "/DSS << /Certs [1 0 R] >>", ""),
		testPDFWith(1, "/DSS << /CRLs 7 >>", ""),
		testPDFWith(1, "/DSS 6 0 R", "", "<< /Certs [6 0 R] >>"),
	}
	p := newPKI(t)
	out, err := AddDSS(context.Background(), testPDF(1), ValidationData{Certs: [][]byte{p.ca.Raw}})
	if err != nil {
		t.Fatal(err)
	}
	return append(seeds, out)
}

// FuzzReadDSS reads the DSS of arbitrary documents and adds to it: an
// error must be one of the package's sentinels, and what AddDSS writes
// must read back with the new certificate in its DSS.
func FuzzReadDSS(f *testing.F) {
	for _, s := range dssSeeds(f) {
		f.Add(s)
	}
	cert := newPKI(f).ca.Raw
	known := func(err error) bool {
		return errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooComplex) || errors.Is(err, ErrEncrypted) ||
			strings.Contains(err.Error(), "DSS would hold")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := Limits{MaxParsedBytes: 8 << 20, MaxDecompressedBytes: 4 << 20}
		d, err := parse(b, newBudget(lim))
		if err != nil {
			return
		}
		if _, cat, err := d.catalog(); err == nil {
			if _, err := d.readDSS(cat); err != nil && !known(err) {
				t.Fatalf("readDSS: %v", err)
			}
		}
		out, err := AddDSS(context.Background(), b, ValidationData{Certs: [][]byte{cert}})
		if err != nil {
			if !known(err) {
				t.Fatalf("AddDSS: %v", err)
			}
			return
		}
		if !bytes.HasPrefix(out, b) {
			t.Fatal("AddDSS changed the bytes it was given")
		}
		d2, err := parse(out, newBudget(Limits{}))
		if err != nil {
			t.Fatalf("AddDSS wrote what does not parse: %v", err)
		}
		_, cat, err := d2.catalog()
		if err != nil {
			t.Fatalf("catalog after AddDSS: %v", err)
		}
		s, err := d2.readDSS(cat)
		if err != nil || s == nil {
			t.Fatalf("DSS after AddDSS: %v, %v", s, err)
		}
		found := false
		for _, e := range s.certs {
			found = found || bytes.Equal(e.der, cert)
		}
		if !found {
			t.Fatal("the certificate added is not in the DSS")
		}
	})
}
