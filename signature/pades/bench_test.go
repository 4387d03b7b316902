package pades

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
)

// BenchmarkSign measures Sign with a software P-256 key (a token adds its
// own signing time on top): parse, incremental update, hashing and CMS.
func BenchmarkSign(b *testing.B) {
	p := newPKI(b)
	signer, cert := p.official(b, "p256")
	scan := make([]byte, 8<<20)
	if _, err := rand.Read(scan); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pdf  []byte
		opts Options
	}{
		{"1 page invisible", testPDF(1), Options{}},
		{"1 page visible with QR", testPDF(1), Options{Visible: &Appearance{VerifyURL: "https://tte.example.go.id/verifikasi/01JDXYZ4Q7"}}},
		{"200 pages visible", testPDF(200), Options{Visible: &Appearance{VerifyURL: "https://tte.example.go.id/verifikasi/01JDXYZ4Q7"}}},
		{"8 MiB scan visible", testPDFWith(3, "", "", fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(scan), scan)), Options{Visible: &Appearance{VerifyURL: "https://tte.example.go.id/verifikasi/01JDXYZ4Q7"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.pdf)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Sign(context.Background(), tc.pdf, signer, cert, tc.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
