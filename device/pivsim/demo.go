package pivsim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Official is the holder of a demo token.
type Official struct {
	// Name is the certificate's common name.
	Name string
	// NIP is the civil servant number, the certificate's serialNumber.
	NIP string
}

// Demo is a provisioned demo token and the files beside it.
type Demo struct {
	Card       *Card
	StatePath  string
	CACertPath string
	CAKeyPath  string
	// CertPath is the PEM certificate of the signature slot 9c.
	CertPath string
	// AttestationRootPath is the PEM certificate of the card's attestation
	// root, which stands in for Yubico's PIV Root CA.
	AttestationRootPath string
	// CertSHA256 is the hex SHA-256 of the 9c certificate DER, the signer
	// identity.
	CertSHA256 string
}

// Demo file names inside the directory given to ProvisionDemo.
const (
	demoState  = "token.json"
	demoCACert = "demo-ca.pem"
	demoCAKey  = "demo-ca-key.pem"
	demoCert   = "signer.pem"
	demoRoot   = "attestation-root.pem"
	demoOrg    = "Pemerintah Provinsi Sulawesi Tenggara"
)

// ProvisionDemo loads the demo token in dir, or makes one: a demo CA, a
// card with a P-256 key in 9c (PIN always) certified for o with digital
// signature and non-repudiation for two years, and a P-256 key in 9a (PIN
// once) with an authentication certificate. Everything is saved in dir.
func ProvisionDemo(dir string, o Official) (*Demo, error) {
	d := &Demo{
		StatePath:  filepath.Join(dir, demoState),
		CACertPath: filepath.Join(dir, demoCACert),
		CAKeyPath:  filepath.Join(dir, demoCAKey),
		CertPath:   filepath.Join(dir, demoCert),

		AttestationRootPath: filepath.Join(dir, demoRoot),
	}
	if _, err := os.Stat(d.StatePath); err == nil {
		c, err := Load(d.StatePath)
		if err != nil {
			return nil, fmt.Errorf("provision demo: %w", err)
		}
		der, err := c.Certificate(SlotSignature)
		if err != nil {
			return nil, fmt.Errorf("provision demo: %w", err)
		}
		d.Card, d.CertSHA256 = c, fingerprint(der)
		if err := d.writeRoot(); err != nil {
			return nil, fmt.Errorf("provision demo: %w", err)
		}
		return d, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("provision demo: %w", err)
	}
	if o.Name == "" || o.NIP == "" {
		return nil, errors.New("provision demo: official needs a name and a NIP")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("provision demo: %w", err)
	}
	caKey, caCert, err := newDemoCA()
	if err != nil {
		return nil, fmt.Errorf("provision demo: %w", err)
	}
	var sn [4]byte
	if _, err := rand.Read(sn[:]); err != nil {
		return nil, fmt.Errorf("provision demo: %w", err)
	}
	c, err := New(Config{Serial: 10_000_000 + binary.BigEndian.Uint32(sn[:])%80_000_000})
	if err != nil {
		return nil, fmt.Errorf("provision demo: %w", err)
	}
	var sigDER []byte
	for _, s := range []struct {
		slot  byte
		pin   PINPolicy
		usage x509.KeyUsage
		ext   []x509.ExtKeyUsage
	}{
		{SlotSignature, PINPolicyAlways, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, nil},
		{SlotAuthentication, PINPolicyOnce, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	} {
		pub, err := c.GenerateKey(s.slot, AlgECCP256, s.pin, TouchPolicyNever)
		if err != nil {
			return nil, fmt.Errorf("provision demo: %w", err)
		}
		der, err := issue(caKey, caCert, pub, o, s.usage, s.ext)
		if err != nil {
			return nil, fmt.Errorf("provision demo: slot %x: %w", s.slot, err)
		}
		if err := c.SetCertificate(s.slot, der); err != nil {
			return nil, fmt.Errorf("provision demo: %w", err)
		}
		if s.slot == SlotSignature {
			sigDER = der
		}
	}
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return nil, fmt.Errorf("provision demo: %w", err)
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{
		{d.CACertPath, "CERTIFICATE", caCert.Raw},
		{d.CAKeyPath, "PRIVATE KEY", caKeyDER},
		{d.CertPath, "CERTIFICATE", sigDER},
	} {
		if err := writeAtomic(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})); err != nil {
			return nil, fmt.Errorf("provision demo: %w", err)
		}
	}
	if err := c.Save(d.StatePath); err != nil {
		return nil, fmt.Errorf("provision demo: %w", err)
	}
	d.Card, d.CertSHA256 = c, fingerprint(sigDER)
	if err := d.writeRoot(); err != nil {
		return nil, fmt.Errorf("provision demo: %w", err)
	}
	return d, nil
}

// writeRoot writes the card's attestation root beside its state, for
// whoever checks its attestations (tekend's token policy in a demo).
func (d *Demo) writeRoot() error {
	root, err := d.Card.AttestationRoot()
	if err != nil {
		return err
	}
	return writeAtomic(d.AttestationRootPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}))
}

func fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newDemoCA() (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "Teken Demo CA", Organization: []string{demoOrg}, Country: []string{"ID"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

func issue(caKey crypto.Signer, ca *x509.Certificate, pub crypto.PublicKey, o Official, usage x509.KeyUsage, ext []x509.ExtKeyUsage) ([]byte, error) {
	sn, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject: pkix.Name{
			CommonName:   o.Name,
			SerialNumber: o.NIP,
			Organization: []string{demoOrg},
			Country:      []string{"ID"},
		},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.AddDate(2, 0, 0),
		KeyUsage:    usage,
		ExtKeyUsage: ext,
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
}
