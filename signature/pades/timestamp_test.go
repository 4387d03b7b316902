package pades

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// FuzzFindSignature feeds arbitrary bytes, and arbitrary positions, to the
// search Timestamp makes for the signature it rewrites: it must refuse
// with ErrMalformed or find a signature that verifies, never panic or
// point outside the file.
func FuzzFindSignature(f *testing.F) {
	p := newPKI(f)
	signer, cert := p.official(f, "p256")
	res, err := Sign(context.Background(), testPDF(1), signer, cert, Options{TSA: &TSAOptions{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(res.PDF, res.contents[0], res.contents[1])
	f.Add(res.PDF, 0, 0)
	f.Add(append(bytes.Clone(res.PDF), '\n'), 0, 0)
	f.Add([]byte("/ByteRange [0 1 3 0]<>"), 1, 3)
	f.Add([]byte("%PDF /ByteRange [0 10 12 0] /ByteRange [[[[[["), 0, 0)
	f.Fuzz(func(t *testing.T, b []byte, start, end int) {
		sig, err := lastSignature(context.Background(), b, [2]int{start, end})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		if sig.contents[0] <= 0 || sig.contents[1] > len(b) || len(sig.value) == 0 {
			t.Fatalf("found signature at %v in %d bytes", sig.contents, len(b))
		}
	})
}

// A context that has ended stops Timestamp before the authority is asked,
// and says so as a missing timestamp, not as a broken PDF.
func TestTimestampCancelled(t *testing.T) {
	p := newPKI(t)
	res, _ := sign(t, p, testPDF(1), "p256", Options{TSA: tripwire(t)})
	before := bytes.Clone(res.PDF)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := Timestamp(ctx, &Signed{PDF: res.PDF}, *tripwire(t))
	if err != nil || got.Timestamped || !errors.Is(got.TimestampError, ErrTimestamp) || !errors.Is(got.TimestampError, context.Canceled) {
		t.Fatalf("Timestamp: %v, %+v; want a missing timestamp for the cancellation", err, got)
	}
	if !bytes.Equal(before, res.PDF) {
		t.Fatal("a cancelled timestamp changed the PDF")
	}
}
