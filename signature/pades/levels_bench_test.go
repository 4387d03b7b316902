package pades

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/revocation"
	"github.com/tekenid/teken/signature/tsa"
)

// BenchmarkLevels measures what each level costs one letter after the
// card has signed, with the responders on loopback: `openssl ts` as the
// authority and `openssl ocsp` for the chain, each started once per
// request (which is most of their cost here). B-B is the baseline of the
// same run; a software P-256 key stands in for the token.
func BenchmarkLevels(b *testing.B) {
	chain := testenv.NewChain(b)
	signer := chain.Leaf.Key
	roots := x509.NewCertPool()
	roots.AddCert(chain.Root.Cert)
	authority := chain.StartTSA(b, nil)
	client, err := tsa.New(tsa.Config{Authorities: []tsa.Authority{{URL: authority.URL}}, Roots: roots})
	if err != nil {
		b.Fatal(err)
	}
	checker := revocation.New(revocation.Config{})
	letter := testPDF(2)
	ctx := context.Background()
	signerChain := chain.Certs()

	// "B-LT uncached" asks the responders for every certificate of every
	// letter; plain B-LT reuses answers issued after the timestamp, which
	// within the second of the token's genTime they are.
	for _, name := range []string{"B-B", "B-T", "B-LT", "B-LT uncached", "B-LTA"} {
		level, _, uncached := strings.Cut(name, " ")
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				opts := Options{Visible: &Appearance{VerifyURL: "https://tte.example.go.id/v/1"}}
				if level != "B-B" {
					opts.TSA = &TSAOptions{Client: client}
				}
				s, err := Sign(ctx, letter, signer, chain.Leaf.Cert, opts)
				if err != nil {
					b.Fatal(err)
				}
				if level == "B-B" {
					continue
				}
				if s, err = Timestamp(ctx, s, *opts.TSA); err != nil || !s.Timestamped {
					b.Fatalf("timestamp: %v %v", err, s.TimestampError)
				}
				if level == "B-T" {
					continue
				}
				var vd ValidationData
				if uncached {
					checker = revocation.New(revocation.Config{})
				}
				for _, c := range [][]*x509.Certificate{signerChain, s.Token.Chain} {
					ev, err := checker.Check(ctx, c, s.Token.GenTime)
					if err != nil {
						b.Fatal(err)
					}
					for _, x := range c {
						vd.Certs = append(vd.Certs, x.Raw)
					}
					vd.OCSPs, vd.CRLs = append(vd.OCSPs, ev.OCSPs...), append(vd.CRLs, ev.CRLs...)
				}
				pdf, err := AddDSS(ctx, s.PDF, vd)
				if err != nil {
					b.Fatal(err)
				}
				if level == "B-LT" {
					continue
				}
				if _, err := AddDocumentTimestamp(ctx, pdf, client); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
