package pades

import (
	"crypto"
	"errors"
	"math/big"
	"testing"
)

// FuzzCheck feeds arbitrary bytes to the PDF reader: it must answer with
// nil, ErrMalformed, ErrEncrypted or ErrLocked, never panic, and
// the block must be placeable on whatever Inspect accepts.
func FuzzCheck(f *testing.F) {
	f.Add(testPDF(1))
	f.Add(testPDF(3))
	f.Add([]byte("%PDF-1.7\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\nxref\n0 2\n0000000000 65535 f \n0000000009 00000 n \ntrailer<</Size 2/Root 1 0 R/Prev 0>>\nstartxref\n54\n%%EOF"))
	f.Add([]byte("%PDF-1.5\n1 0 obj<</Type/XRef/W[1 2 1]/Size 1/Filter/FlateDecode/DecodeParms<</Predictor 12/Columns 4>>/Length 3>>stream\nabc\nendstream endobj\nstartxref\n9\n%%EOF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := check(b)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrEncrypted) && !errors.Is(err, ErrLocked) {
			t.Fatalf("Inspect: untyped error %v", err)
		}
		page, _, berr := inspectBlock(b, Appearance{})
		if err == nil && berr != nil {
			t.Fatalf("Inspect passed without a block but not with one: %v", berr)
		}
		if berr == nil && page < 1 {
			t.Fatalf("block page %d", page)
		}
	})
}

// FuzzTimestampResponse feeds arbitrary bytes as a timestamp authority's
// answer: they must be refused with ErrTimestamp, never accepted or panic.
func FuzzTimestampResponse(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Add([]byte{0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02})
	f.Add([]byte("not a timestamp response"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := checkTimestamp(b, crypto.SHA256, []byte("signature value"), big.NewInt(42))
		if !errors.Is(err, ErrTimestamp) {
			t.Fatalf("accepted or untyped: %v", err)
		}
	})
}
