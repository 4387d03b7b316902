package revocation

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

func TestCRLScope(t *testing.T) {
	root := testenv.NewRootPKI(t, "Root")
	leaf := root.Issue(t, "Leaf", testenv.IssueOptions{})
	const url = "http://crl.example/root.crl"
	uri := func(u string) []byte {
		// distributionPoint [0] { fullName [0] { uniformResourceIdentifier [6] u } }
		gn, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(u)})
		full, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: gn})
		return full
	}
	idp := func(fields ...asn1.RawValue) *pkix.Extension {
		var body []byte
		for _, f := range fields {
			b, _ := asn1.Marshal(f)
			body = append(body, b...)
		}
		v, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
		return &pkix.Extension{Id: oidIssuingDP, Critical: true, Value: v}
	}
	dp := func(u string) asn1.RawValue {
		return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: uri(u)}
	}
	flag := func(tag int) asn1.RawValue {
		return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, Bytes: []byte{0xff}}
	}
	for _, tc := range []struct {
		name string
		ext  *pkix.Extension
		want string // "" = decides the leaf
	}{
		{"no idp", nil, ""},
		{"idp naming the url", idp(dp(url)), ""},
		{"idp naming another url", idp(dp("http://other.example/x.crl")), "does not name"},
		{"only CA certificates", idp(flag(2)), "only CA"},
		{"only user certificates", idp(flag(1)), ""},
		{"indirect", idp(flag(4)), "partial"},
		{"delta", &pkix.Extension{Id: oidDeltaCRLIndicator, Critical: true, Value: []byte{2, 1, 1}}, "delta"},
		{"unknown critical", &pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3}, Critical: true, Value: []byte{5, 0}}, "unknown critical"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}
			if tc.ext != nil {
				tmpl.ExtraExtensions = []pkix.Extension{*tc.ext}
			}
			der, err := x509.CreateRevocationList(rand.Reader, tmpl, root.Cert, root.Key)
			if err != nil {
				t.Fatal(err)
			}
			e, err := checkCRL(der, root.Cert, time.Hour)
			if err == nil {
				err = e.covers(leaf.Cert, url)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}

	other := testenv.NewRootPKI(t, "Root")
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, other.Cert, other.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkCRL(der, root.Cert, time.Hour); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("CRL of another key with the same name: err = %v, want the signature refused", err)
	}
}
