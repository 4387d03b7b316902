package ctl

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Profile is the organisation part of an official's certificate subject,
// the same for every official of one office: read from a TOML file
// (--profile) with the keys o, ou, c, st and l.
type Profile struct {
	Organization string `toml:"o"`
	Unit         string `toml:"ou"`
	Country      string `toml:"c"`
	Province     string `toml:"st"`
	Locality     string `toml:"l"`
}

// maxProfileBytes bounds a profile file: a handful of short names.
const maxProfileBytes = 64 << 10

// ParseProfile reads a TOML profile. Unknown keys are errors, so that a
// typo does not quietly drop a field from every certificate request.
func ParseProfile(r io.Reader) (Profile, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxProfileBytes+1))
	if err != nil {
		return Profile{}, fmt.Errorf("read profile: %w", err)
	}
	if len(raw) > maxProfileBytes {
		return Profile{}, fmt.Errorf("profile larger than %d bytes", maxProfileBytes)
	}
	var p Profile
	md, err := toml.NewDecoder(bytes.NewReader(raw)).Decode(&p)
	if err != nil {
		return Profile{}, fmt.Errorf("profile: %w", err)
	}
	if keys := md.Undecoded(); len(keys) > 0 {
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = fmt.Sprintf("%q", k.String())
		}
		return Profile{}, fmt.Errorf("profile: unknown key %s (want o, ou, c, st or l)", strings.Join(names, ", "))
	}
	return p, nil
}

// Holder is whom a token is enrolled for.
type Holder struct {
	Name    string // the certificate's CN
	NIP     string // the certificate's serialNumber
	Profile Profile
}

// Upper bounds of X.520 names (RFC 5280 Appendix A.1, ub-*).
const (
	ubCommonName = 64
	ubOrgName    = 64
	ubOrgUnit    = 64
	ubState      = 128
	ubLocality   = 128
)

// Validate reports every bad field at once, each naming the field.
func (h Holder) Validate() error {
	var errs []error
	if err := CheckNIP(h.NIP); err != nil {
		errs = append(errs, fmt.Errorf("nip: %w", err))
	}
	for _, f := range []struct {
		name, value string
		max         int
		required    bool
	}{
		{"name", h.Name, ubCommonName, true},
		{"o", h.Profile.Organization, ubOrgName, false},
		{"ou", h.Profile.Unit, ubOrgUnit, false},
		{"st", h.Profile.Province, ubState, false},
		{"l", h.Profile.Locality, ubLocality, false},
	} {
		if err := checkName(f.value, f.max, f.required); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", f.name, f.value, err))
		}
	}
	if c := h.Profile.Country; c != "" && !isCountry(c) {
		errs = append(errs, fmt.Errorf("c %q: want a two-letter ISO 3166 code such as ID", c))
	}
	return errors.Join(errs...)
}

func checkName(v string, max int, required bool) error {
	switch {
	case v == "" && required:
		return errors.New("empty")
	case !utf8.ValidString(v):
		return errors.New("not UTF-8")
	case utf8.RuneCountInString(v) > max:
		return fmt.Errorf("longer than %d characters", max)
	case strings.TrimSpace(v) != v:
		return errors.New("starts or ends with a space")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return errors.New("has a control character")
		}
	}
	return nil
}

func isCountry(c string) bool {
	return len(c) == 2 && 'A' <= c[0] && c[0] <= 'Z' && 'A' <= c[1] && c[1] <= 'Z'
}

// CheckNIP checks a civil servant number (Nomor Induk Pegawai): 18 digits,
// the date of birth (YYYYMMDD), the year and month of appointment (YYYYMM),
// the sex (1 or 2) and a three-digit sequence number, as BKN assigns them.
func CheckNIP(nip string) error {
	if len(nip) != 18 {
		return fmt.Errorf("want 18 digits, got %d characters", len(nip))
	}
	for _, c := range nip {
		if c < '0' || c > '9' {
			return errors.New("want 18 digits only")
		}
	}
	born, err := time.Parse("20060102", nip[:8])
	if err != nil || born.Year() < 1900 {
		return fmt.Errorf("digits 1-8 (%s) are not a date of birth YYYYMMDD", nip[:8])
	}
	appointed, err := time.Parse("200601", nip[8:14])
	if err != nil || appointed.Year() < born.Year() {
		return fmt.Errorf("digits 9-14 (%s) are not a year and month of appointment YYYYMM", nip[8:14])
	}
	if nip[14] != '1' && nip[14] != '2' {
		return fmt.Errorf("digit 15 (%c) is not 1 or 2", nip[14])
	}
	return nil
}

// subject is the certificate request's subject for h.
func (h Holder) subject() pkix.Name {
	n := pkix.Name{CommonName: h.Name, SerialNumber: h.NIP}
	p := h.Profile
	for _, f := range []struct {
		dst *[]string
		v   string
	}{{&n.Organization, p.Organization}, {&n.OrganizationalUnit, p.Unit}, {&n.Country, p.Country},
		{&n.Province, p.Province}, {&n.Locality, p.Locality}} {
		if f.v != "" {
			*f.dst = []string{f.v}
		}
	}
	return n
}

// oidKeyUsage is id-ce-keyUsage (RFC 5280 §4.2.1.3).
var oidKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}

// signingKeyUsage is the keyUsage extension the request asks for:
// digitalSignature and nonRepudiation (contentCommitment), critical.
func signingKeyUsage() (pkix.Extension, error) {
	// Bits 0 and 1 of the BIT STRING, most significant first.
	v, err := asn1.Marshal(asn1.BitString{Bytes: []byte{0xc0}, BitLength: 2})
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: oidKeyUsage, Critical: true, Value: v}, nil
}

// certificateRequest makes h's PKCS #10 request, signed by the token's key.
func certificateRequest(h Holder, key crypto.Signer) ([]byte, error) {
	ku, err := signingKeyUsage()
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	tmpl := &x509.CertificateRequest{Subject: h.subject(), ExtraExtensions: []pkix.Extension{ku}}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	return der, nil
}
