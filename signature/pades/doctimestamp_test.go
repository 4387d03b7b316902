package pades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"testing"

	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/tsa"
)

// A stamper that fails, or answers with a token for other bytes, leaves
// no document timestamp: ErrTimestamp, and the input untouched.
func TestDocumentTimestampRefused(t *testing.T) {
	l := newLTPKI(t)
	pdf, _ := l.signBT(t, testPDF(1), 1)
	before := bytes.Clone(pdf)
	down := errors.New("authority down")
	other, err := l.stamper.Stamp(context.Background(), crypto.SHA256, []byte("another document"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    Stamper
	}{
		{"error", stamperFunc(func(context.Context, crypto.Hash, []byte) (*tsa.Token, error) { return nil, down })},
		{"no token", stamperFunc(func(context.Context, crypto.Hash, []byte) (*tsa.Token, error) { return &tsa.Token{}, nil })},
		{"not a token", stamperFunc(func(context.Context, crypto.Hash, []byte) (*tsa.Token, error) {
			return &tsa.Token{DER: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}, nil
		})},
		{"token for other bytes", stamperFunc(func(context.Context, crypto.Hash, []byte) (*tsa.Token, error) { return other, nil })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := AddDocumentTimestamp(context.Background(), pdf, tc.s)
			if !errors.Is(err, ErrTimestamp) || out != nil {
				t.Fatalf("AddDocumentTimestamp: %v, %d bytes; want ErrTimestamp", err, len(out))
			}
		})
	}
	if !bytes.Equal(pdf, before) {
		t.Fatal("a refused document timestamp changed the input")
	}
	if _, err := AddDocumentTimestamp(context.Background(), pdf, nil); err == nil {
		t.Fatal("nil stamper accepted")
	}
	if _, err := AddDocumentTimestamp(context.Background(), []byte("%PDF-1.7\n"), l.stamper); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v, want ErrMalformed", err)
	}
}

// A token larger than the room reserved is refused with ErrTooLarge: the
// authority embeds a long bundle of certificates.
func TestDocumentTimestampTooLarge(t *testing.T) {
	l := newLTPKI(t)
	var bundle []byte
	// cms reads at most 16 certificates in a token; ten of 2 KiB each
	// are more than the room.
	for i := range 10 {
		k := ecKey(t)
		pad := pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: append([]byte{0x04, 0x82, 0x08, 0x00}, make([]byte, 2048)...)} // an OCTET STRING of 2 KiB
		c := l.cert(t, &x509.Certificate{Subject: pkix.Name{CommonName: fmt.Sprint("padding ", i)}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, ExtraExtensions: []pkix.Extension{pad}}, l.root, &k.PublicKey, l.rootKey)
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	tsaKey := ecKey(t)
	cert := l.cert(t, &x509.Certificate{KeyUsage: x509.KeyUsageDigitalSignature, ExtraExtensions: []pkix.Extension{testenv.TSAExtension(t)}}, l.root, &tsaKey.PublicKey, l.rootKey)
	big := testenv.StartTSA(t, testenv.TSAConfig{Cert: cert, Key: tsaKey, Certs: writeTemp(t, "bundle.pem", bundle)})
	_, err := AddDocumentTimestamp(context.Background(), testPDF(1), &testStamper{url: big.URL})
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrTimestamp) {
		t.Fatalf("AddDocumentTimestamp: %v, want ErrTooLarge and ErrTimestamp", err)
	}
}

// A document timestamp over an unsigned document verifies on its own,
// and one whose token is swapped for another's is Invalid.
func TestDocumentTimestampAlone(t *testing.T) {
	l := newLTPKI(t)
	out, err := AddDocumentTimestamp(context.Background(), testPDF(1), l.stamper)
	if err != nil {
		t.Fatal(err)
	}
	rep := verify(t, out, VerifyOptions{Roots: l.roots()})
	wantStatus(t, rep, Valid)
	if s := rep.Signatures[0]; s.Kind != KindDocumentTimestamp || s.Level != "" || !s.CoversWholeFile {
		t.Errorf("report %+v", s)
	}
	rep = verify(t, out, VerifyOptions{Roots: x509.NewCertPool()})
	wantStatus(t, rep, Indeterminate)
	wantReason(t, rep.Signatures[0], "timestamp authority")

	second, err := AddDocumentTimestamp(context.Background(), testPDF(2), l.stamper)
	if err != nil {
		t.Fatal(err)
	}
	br := verify(t, second, VerifyOptions{Roots: l.roots()}).Signatures[0].ByteRange
	swapped := bytes.Clone(out)
	mine := verify(t, out, VerifyOptions{Roots: l.roots()}).Signatures[0].ByteRange
	if mine[2]-mine[1] != br[2]-br[1] {
		t.Fatal("holes of different sizes")
	}
	copy(swapped[mine[1]:mine[2]], second[br[1]:br[2]])
	rep = verify(t, swapped, VerifyOptions{Roots: l.roots()})
	wantStatus(t, rep, Invalid)
	wantReason(t, rep.Signatures[0], "document timestamp")
}
