package cms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// fakeToken stands in for an RFC 3161 token: a DER SEQUENCE holding the
// SHA-256 of what it stamps, so a test can tell what it was given. Real
// tokens from `openssl ts` are exercised by signature/pades.
func fakeToken(signature []byte) []byte {
	sum := crypto.SHA256.New()
	sum.Write(signature)
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1OctetString(sum.Sum(nil)) })
	return b.BytesOrPanic()
}

// TestPAdESOptions covers OmitSigningTime and SignatureTimestamp, alone
// and together, against openssl and Verify.
func TestPAdESOptions(t *testing.T) {
	pki := newPKI(t)
	doc := []byte("%PDF-1.7\nSurat Edaran 100/55/2026\n")
	for _, tc := range []struct {
		name      string
		key       string
		opts      SignOptions
		omit      bool
		timestamp bool
	}{
		{name: "no signing time", key: "p256", omit: true},
		{name: "timestamp", key: "p384", timestamp: true},
		{name: "pades b-t", key: "rsa", omit: true, timestamp: true},
		{name: "pades b-t pss", key: "rsa", opts: SignOptions{PSS: true}, omit: true, timestamp: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, cert := pki.issue(t, tc.key, signingUsage)
			signer := &countingSigner{Signer: key}
			opts := tc.opts
			opts.Chain = []*x509.Certificate{pki.inter}
			opts.OmitSigningTime = tc.omit
			var stamped [][]byte
			if tc.timestamp {
				opts.SignatureTimestamp = func(_ context.Context, sig []byte) ([]byte, error) {
					stamped = append(stamped, bytes.Clone(sig))
					return fakeToken(sig), nil
				}
			}
			sig, sd := signOnce(t, doc, signer, cert, opts)
			if tc.timestamp {
				if len(stamped) != 1 || !bytes.Equal(stamped[0], sd.signer.signature) {
					t.Fatalf("timestamp asked %d times, or not over the signature value", len(stamped))
				}
				// The unsigned attributes close the SignerInfo and so the
				// whole structure.
				attr, err := attribute(oidAttrSignatureTimeStampToken, func(b *cryptobyte.Builder) { b.AddBytes(fakeToken(stamped[0])) })
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasSuffix(sig, attr) {
					t.Error("signature-time-stamp attribute is not the unsigned attribute")
				}
			}

			printed := opensslVerify(t, pki, sig, doc)
			flat := strings.Join(strings.Fields(printed), " ")
			for _, c := range []struct {
				text string
				want bool
			}{
				{"object: signingTime", !tc.omit},
				{"object: id-smime-aa-timeStampToken", tc.timestamp},
				{"unsignedAttrs: <ABSENT>", !tc.timestamp},
				{"object: messageDigest", true},
				{"object: id-smime-aa-signingCertificateV2", true},
			} {
				if strings.Contains(flat, c.text) != c.want {
					t.Errorf("openssl -print has %q: %v, want %v\n%s", c.text, !c.want, c.want, printed)
				}
			}

			got, err := Verify(sig, doc, VerifyOptions{Roots: pki.roots()})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.SigningTime.IsZero() != tc.omit {
				t.Errorf("SigningTime %v with OmitSigningTime %v", got.SigningTime, tc.omit)
			}
			if _, err := Verify(sig, append(bytes.Clone(doc), ' '), VerifyOptions{}); !errors.Is(err, ErrDigestMismatch) {
				t.Errorf("changed content: %v, want ErrDigestMismatch", err)
			}
		})
	}
}

func TestSignatureTimestampFailures(t *testing.T) {
	pki := newPKI(t)
	key, cert := pki.issue(t, "p256", signingUsage)
	token := fakeToken([]byte("x"))
	tsaDown := errors.New("authority unreachable")
	for _, tc := range []struct {
		name  string
		stamp func(context.Context, []byte) ([]byte, error)
		is    error // nil means Sign must succeed without the attribute
		fails bool
	}{
		{"error fails the signature", func(context.Context, []byte) ([]byte, error) { return nil, tsaDown }, tsaDown, true},
		{"no token adds nothing", func(context.Context, []byte) ([]byte, error) { return nil, nil }, nil, false},
		{"not DER", func(context.Context, []byte) ([]byte, error) { return []byte("token"), nil }, nil, true},
		{"trailing data", func(context.Context, []byte) ([]byte, error) { return append(bytes.Clone(token), 0), nil }, nil, true},
		{"not a SEQUENCE", func(context.Context, []byte) ([]byte, error) { return []byte{0x04, 1, 0}, nil }, nil, true},
		{"cancelled while stamping", func(ctx context.Context, _ []byte) ([]byte, error) { return nil, context.Canceled }, context.Canceled, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer := &countingSigner{Signer: key}
			sig, err := Sign(t.Context(), strings.NewReader("x"), signer, cert, SignOptions{SignatureTimestamp: tc.stamp})
			if len(signer.digests) != 1 {
				t.Errorf("signer called %d times, want 1", len(signer.digests))
			}
			if tc.fails {
				if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
					t.Fatalf("Sign: %v, want failure matching %v", err, tc.is)
				}
				return
			}
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if bytes.Contains(sig, oidDER(t, oidAttrSignatureTimeStampToken)) {
				t.Error("signature-time-stamp attribute written without a token")
			}
			if _, err := Verify(sig, []byte("x"), VerifyOptions{}); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func oidDER(t *testing.T, oid []int) []byte {
	t.Helper()
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1ObjectIdentifier(oid)
	out, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
