package ctl

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/device/pivsim"
	"github.com/tekenid/teken/internal/testenv"
)

func TestCheckNIP(t *testing.T) {
	for _, tc := range []struct {
		nip  string
		want string // "" for valid
	}{
		{"198703152010012003", ""},
		{"197501012000031001", ""},
		{"19870315201001200", "18 digits"},
		{"1987031520100120031", "18 digits"},
		{"19870315201001200x", "digits only"},
		{"١٩٨٧٠٣١٥٢٠١٠٠١٢٠٠٣", "18 digits"}, // Arabic-Indic digits are not ASCII
		{"198702302010012003", "date of birth"},
		{"198703152010132003", "appointment"},
		{"198703151980012003", "appointment"}, // appointed before birth
		{"198703152010013003", "digit 15"},
	} {
		err := CheckNIP(tc.nip)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckNIP(%q) = %v, want %q", tc.nip, err, tc.want)
		}
	}
}

func TestParseProfile(t *testing.T) {
	p, err := ParseProfile(strings.NewReader("o = \"Pemprov Sultra\"\nou = \"Setda\"\nc = \"ID\"\nst = \"Sulawesi Tenggara\"\nl = \"Kendari\"\n"))
	if err != nil || p != (Profile{"Pemprov Sultra", "Setda", "ID", "Sulawesi Tenggara", "Kendari"}) {
		t.Fatalf("ParseProfile = %+v, %v", p, err)
	}
	for in, want := range map[string]string{
		"org = \"x\"\n":      `unknown key "org"`,
		"o = 1\n":            "profile",
		"o = \"unterminated": "profile",
	} {
		if _, err := ParseProfile(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseProfile(%q) = %v, want %q", in, err, want)
		}
	}
	if _, err := ParseProfile(bytes.NewReader(make([]byte, maxProfileBytes+1))); err == nil {
		t.Error("an oversized profile was read")
	}
}

// TestHolderValidateReportsEveryField: one run names all bad fields.
func TestHolderValidateReportsEveryField(t *testing.T) {
	h := Holder{Name: "", NIP: "1", Profile: Profile{Country: "Indonesia", Organization: strings.Repeat("x", 65), Locality: " Kendari"}}
	err := h.Validate()
	for _, want := range []string{"nip:", "name", "c \"Indonesia\"", "o \"", "l \" Kendari\""} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, lacks %q", err, want)
		}
	}
	if err := (Holder{Name: "Siti", NIP: "198703152010012003", Profile: Profile{Country: "ID"}}).Validate(); err != nil {
		t.Errorf("valid holder: %v", err)
	}
}

func TestAskNewSecret(t *testing.T) {
	for _, tc := range []struct {
		name, input, want, wantOut string
		err                        bool
	}{
		{"agree", "246810\n246810\n", "246810", "", false},
		{"crlf", "246810\r\n246810\r\n", "246810", "", false},
		{"differ then agree", "246810\n246811\n135790\n135790\n", "135790", "differ", false},
		{"factory then good", "123456\n246810\n246810\n", "246810", "factory default", false},
		{"too short", "12\n246810\n246810\n", "246810", "6 to 8", false},
		{"not alnum", "24 681\n246810\n246810\n", "246810", "letters", false},
		{"same as avoid", "111111\n246810\n246810\n", "246810", "differ from the PIN", false},
		{"gives up", "1\n2\n3\n", "", "", true},
		{"input ends", "246810\n", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			p := LinePrompter{In: strings.NewReader(tc.input), Out: &out}
			got, err := askNewSecret(context.Background(), p, &out, kindPIN, factoryPIN, []byte("111111"))
			if tc.err != (err != nil) || string(got) != tc.want || !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("got %q, %v; output %q", got, err, out.String())
			}
			if strings.Count(out.String(), "246810") > 0 {
				t.Errorf("a secret was written to the output: %q", out.String())
			}
		})
	}
}

func TestReadLineStopsAtLineEnd(t *testing.T) {
	r := strings.NewReader("first\nsecond")
	a, err := ReadLine(r)
	if err != nil || string(a) != "first" {
		t.Fatalf("ReadLine = %q, %v", a, err)
	}
	if rest := r.Len(); rest != len("second") {
		t.Errorf("ReadLine consumed past the line: %d bytes left", rest)
	}
	if b, err := ReadLine(r); err != nil || string(b) != "second" {
		t.Errorf("last line = %q, %v", b, err)
	}
	if _, err := ReadLine(r); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("at EOF: %v", err)
	}
	if _, err := ReadLine(strings.NewReader(strings.Repeat("x", maxAnswer+1))); err == nil {
		t.Error("an endless line was read")
	}
}

// TestEnrolInteractive drives a whole enrolment through the prompts, as an
// operator at a terminal answers them, on the real pcscd and software
// token, then checks that the new PIN is the token's.
func TestEnrolInteractive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pcscd := testenv.StartPCSCD(t)
	card, err := pivsim.New(pivsim.Config{Serial: 5302})
	if err != nil {
		t.Fatal(err)
	}
	defer card.Close()
	if err := card.Insert(ctx, pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	toks, err := device.Open(ctx, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer toks.Close(context.Background())
	reader := pcscd.Readers[0]
	if err := testenv.WaitFor(ctx, 20*time.Second, func() error { _, err := toks.Info(ctx, reader); return err }); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Name, NIP (a typo first would fail: Validate runs after both),
	// the new PIN twice (mistyped once), the new PUK twice.
	answers := strings.Join([]string{"Siti Rahmawati", "198703152010012003",
		"246810", "246801", "246810", "246810", "97531864", "97531864", ""}, "\n")
	var out bytes.Buffer
	res, err := Enrol(ctx, toks, EnrolOptions{Reader: reader, OutDir: dir, Touch: device.TouchNever,
		Prompt: LinePrompter{In: strings.NewReader(answers), Out: &out}, Out: &out})
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "The two PINs differ") {
		t.Error("the mistyped PIN was not asked again")
	}
	raw, err := os.ReadFile(res.CSRFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil || csr.CheckSignature() != nil || csr.Subject.SerialNumber != "198703152010012003" {
		t.Fatalf("request: %v", err)
	}
	if res.AttestationFile != filepath.Join(dir, "198703152010012003-attestation.pem") {
		t.Errorf("attestation file %s", res.AttestationFile)
	}
	// The new PIN works; the factory one would not (not tried: it would
	// cost a try and prove less than the metadata does).
	info, err := toks.Info(ctx, reader)
	if err != nil || !info.Defaults.Known || info.Defaults.PIN || info.Defaults.PUK || info.Defaults.ManagementKey {
		t.Fatalf("after enrolment: %+v, %v", info.Defaults, err)
	}
	err = toks.Admin(ctx, reader, func(a *device.Admin) error {
		_, err := a.Signer(device.SlotSignature, []byte("246810"))
		return err
	})
	if err != nil {
		t.Errorf("the new PIN does not open the key: %v", err)
	}
}

// FuzzParseProfile: any input is refused or read, never a panic.
func FuzzParseProfile(f *testing.F) {
	f.Add([]byte("o = \"Pemprov Sultra\"\nou = \"Setda\"\nc = \"ID\"\n"))
	f.Add([]byte("org = 1\n[x]\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ParseProfile(bytes.NewReader(in))
		if err != nil && p != (Profile{}) {
			t.Errorf("error with a profile: %+v", p)
		}
	})
}

// FuzzParseCertificate: the CA's file is refused or read, never a panic.
func FuzzParseCertificate(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := ParseCertificate(in)
		if (c == nil) == (err == nil) {
			t.Errorf("certificate %v with error %v", c != nil, err)
		}
	})
}

// TestImportCertOtherKeyWithoutAttestation: an imported key has no
// attestation to compare with before the PIN, so the token layer's own
// comparison refuses the certificate, and nothing is written.
func TestImportCertOtherKeyWithoutAttestation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pcscd := testenv.StartPCSCD(t)
	card, err := pivsim.New(pivsim.Config{Serial: 5305})
	if err != nil {
		t.Fatal(err)
	}
	defer card.Close()
	mine, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := card.ImportKey(pivsim.SlotSignature, mine, pivsim.PINPolicyAlways, pivsim.TouchPolicyNever); err != nil {
		t.Fatal(err)
	}
	if err := card.Insert(ctx, pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	toks, err := device.Open(ctx, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer toks.Close(context.Background())
	reader := pcscd.Readers[0]
	if err := testenv.WaitFor(ctx, 20*time.Second, func() error { _, err := toks.Info(ctx, reader); return err }); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject:   pkix.Name{CommonName: "Siti", SerialNumber: "198703152010012003"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature},
		caCert, other.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var out bytes.Buffer
	_, err = ImportCert(ctx, toks, ImportOptions{Reader: reader, CertFile: write("siti.pem", der), CABundle: write("ca.pem", caDER),
		PIN: []byte(pivsim.DefaultPIN), Out: &out})
	if !errors.Is(err, ErrCertRefused) || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("ImportCert = %v", err)
	}
	if got, err := card.Certificate(pivsim.SlotSignature); err == nil && len(got) > 0 {
		t.Error("a certificate for another key was written")
	}
}
