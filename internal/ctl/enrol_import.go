package ctl

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tekenid/teken/device"
)

// ErrCertRefused is wrapped by every reason ImportCert refuses a
// certificate for, before or on the token.
var ErrCertRefused = errors.New("certificate refused")

// ImportOptions configure ImportCert.
type ImportOptions struct {
	// Reader names the token's reader; "" means the only token present.
	Reader string
	// CertFile is the certificate the CA issued (PEM, the official's
	// first; DER accepted).
	CertFile string
	// CABundle is the CA certificates (PEM), the same tekend's
	// signing.signer_ca_files names.
	CABundle string
	// Replace allows overwriting another certificate in slot 9c.
	Replace bool
	// PIN is the token's PIN; nil asks Prompt. ImportCert zeroes it.
	PIN    []byte
	Prompt Prompter
	Now    func() time.Time
	Out    io.Writer
}

// maxCertFile bounds a certificate file or CA bundle.
const maxCertFile = 1 << 20

// ImportCert writes the issued certificate into slot 9c after checking that
// tekend will sign with it: valid now, a key usage for signing, not a CA,
// chaining to the bundle, and for the key in slot 9c.
func ImportCert(ctx context.Context, toks *device.Tokens, o ImportOptions) (*x509.Certificate, error) {
	defer clear(o.PIN)
	if o.Now == nil {
		o.Now = time.Now
	}
	cert, err := loadCertFile(o.CertFile)
	if err != nil {
		return nil, err
	}
	roots, err := loadBundle(o.CABundle)
	if err != nil {
		return nil, err
	}
	if err := CheckSigningCert(cert, roots, o.Now()); err != nil {
		return nil, err
	}
	reader, err := pickReader(ctx, toks, o.Reader)
	if err != nil {
		return nil, err
	}
	var info device.Info
	var attested crypto.PublicKey
	err = toks.Admin(ctx, reader, func(a *device.Admin) error {
		var err error
		if info, err = a.Info(); err != nil {
			return err
		}
		if leaf, _, aerr := a.Attestation(device.SlotSignature); aerr == nil {
			attested = leaf.PublicKey
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	switch {
	case info.SignCert != nil && bytes.Equal(info.SignCert.Raw, cert.Raw):
		fmt.Fprintf(o.Out, "Token %d already holds this certificate in slot 9c.\n", info.Serial)
		return cert, nil
	case info.SignCert != nil && !o.Replace:
		return nil, fmt.Errorf("token %d: slot 9c already holds a certificate (%s, until %s): --replace overwrites it",
			info.Serial, info.SignCert.Subject.CommonName, info.SignCert.NotAfter.Format("2006-01-02"))
	}
	// The key the token attests can be compared before any PIN is asked;
	// ImportCertificate compares again with the key itself.
	if eq, ok := attested.(interface{ Equal(crypto.PublicKey) bool }); ok && !eq.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: it is for another key than the one in slot 9c of token %d", ErrCertRefused, info.Serial)
	}
	pin := o.PIN
	o.PIN = nil
	if pin == nil {
		if o.Prompt == nil {
			return nil, errors.New("no PIN: give it with --pin-file FILE")
		}
		if pin, err = o.Prompt.AskSecret(ctx, "PIN: "); err != nil {
			return nil, fmt.Errorf("pin: %w", err)
		}
	}
	defer clear(pin)
	err = toks.Admin(ctx, reader, func(a *device.Admin) error {
		now, err := a.Info()
		if err != nil {
			return err
		}
		if now.Serial != info.Serial {
			return fmt.Errorf("the token in %s is now %d, not %d: start again", reader, now.Serial, info.Serial)
		}
		return a.ImportCertificate(pin, device.SlotSignature, cert)
	})
	if errors.Is(err, device.ErrKeyMismatch) {
		return nil, fmt.Errorf("%w: it is for another key than the one in slot 9c of token %d", ErrCertRefused, info.Serial)
	}
	if err != nil {
		return nil, fmt.Errorf("import certificate into token %d: %w", info.Serial, err)
	}
	return cert, nil
}

// CheckSigningCert applies tekend's rules for a signer certificate, a
// little stricter: valid at now, key usage digitalSignature or
// nonRepudiation (present, not merely absent), not a CA, and chaining to
// roots as tekend checks it (the bundle's certificates as anchors, any
// extended key usage).
func CheckSigningCert(cert *x509.Certificate, roots *x509.CertPool, now time.Time) error {
	const signing = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	day := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
	switch {
	case now.After(cert.NotAfter):
		return fmt.Errorf("%w: expired on %s", ErrCertRefused, day(cert.NotAfter))
	case now.Before(cert.NotBefore):
		return fmt.Errorf("%w: not valid before %s", ErrCertRefused, day(cert.NotBefore))
	case cert.IsCA:
		return fmt.Errorf("%w: it is a CA certificate, not an official's", ErrCertRefused)
	case cert.KeyUsage&signing == 0:
		return fmt.Errorf("%w: its key usage (%#x) has neither digitalSignature nor nonRepudiation", ErrCertRefused, int(cert.KeyUsage))
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return fmt.Errorf("%w: it does not chain to the CA bundle: %w", ErrCertRefused, err)
	}
	return nil
}

// loadCertFile reads the official's certificate: the first PEM
// CERTIFICATE, or DER. Further certificates (a chain from the CA) are
// ignored: the chain is checked against the bundle alone, as tekend does.
func loadCertFile(path string) (*x509.Certificate, error) {
	raw, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	cert, err := ParseCertificate(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

// ParseCertificate decodes the first PEM CERTIFICATE of raw, or raw as DER.
func ParseCertificate(raw []byte) (*x509.Certificate, error) {
	rest := raw
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certificate: %w", err)
			}
			return c, nil
		}
	}
	if bytes.Contains(raw, []byte("-----BEGIN")) {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	c, err := x509.ParseCertificate(raw)
	if err != nil {
		return nil, fmt.Errorf("neither PEM nor a DER certificate: %w", err)
	}
	return c, nil
}

// loadBundle reads PEM CA certificates into a pool.
func loadBundle(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, errors.New("no CA bundle (--ca)")
	}
	raw, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := raw; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA bundle %s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("CA bundle %s: no PEM certificate", path)
	}
	return pool, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxCertFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(raw) > maxCertFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxCertFile)
	}
	return raw, nil
}
