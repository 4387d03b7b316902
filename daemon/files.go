package daemon

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/transport"
)

// The loaders of the files the configuration names. Open loads them through
// these functions and CheckConfig (tekend check-config, tekenctl doctor)
// loads them through the same ones, so whatever tekend run refuses is
// refused by the check first, in the same words. Each error starts with the
// field that names the file.

// problems are several errors reported together, each naming its field:
// one per line, so that a check can print them one by one (CheckConfig
// takes them apart again).
type problems []error

func (p problems) Error() string {
	lines := make([]string, len(p))
	for i, err := range p {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As see every problem.
func (p problems) Unwrap() []error { return p }

// err drops nil errors and returns the rest, or nil when none is left, so
// that an empty problems never becomes a non-nil error.
func (p problems) err() error {
	var out problems
	for _, e := range p {
		if e != nil {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// flatten takes problems apart, nested ones too; any other error, even one
// that wraps problems, is one.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	p, ok := err.(problems)
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range p {
		out = append(out, flatten(e)...)
	}
	return out
}

// loadDispatcherKeys reads dispatcher.key_files: PEM public keys of a kind
// a job may be signed with (ES256 or EdDSA, api.Algorithm). Every file is
// read, and every bad one reported.
func loadDispatcherKeys(files []string) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	var errs problems
	for _, f := range files {
		pubs, err := readPublicKeys(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("dispatcher.key_files: %w", err))
			continue
		}
		keys = append(keys, pubs...)
	}
	return keys, errs.err()
}

func readPublicKeys(path string) ([]crypto.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parsePublicKeys(path, raw)
}

func parsePublicKeys(path string, raw []byte) ([]crypto.PublicKey, error) {
	// Said in so many words: the dispatcher's private key has no business
	// on a terminal, and "want PUBLIC KEY" alone does not tell an
	// installer that the wrong half of the pair was copied.
	if typ, ok := privateKeyBlock(raw); ok {
		return nil, fmt.Errorf("%s holds a private key (PEM %q), not a public key: give the terminal only the dispatcher's public key (the .pub file of tekenctl keygen), and treat this private key as exposed", path, typ)
	}
	pubs, err := api.ParsePublicKeysPEM(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pubs, nil
}

// privateKeyBlock finds a PEM block of any private key type ("PRIVATE
// KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", …).
func privateKeyBlock(raw []byte) (string, bool) {
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			return "", false
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			return block.Type, true
		}
	}
}

// readCertificates reads a PEM file of certificates (a CA bundle, a client
// certificate). Unlike x509.CertPool.AppendCertsFromPEM, which skips what
// it cannot parse, every block must be a certificate that parses: a bundle
// with a damaged or foreign block is a mistake to be told, not a CA
// quietly missing.
func readCertificates(path string) ([]*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseCertificates(path, raw)
}

func parseCertificates(path string, raw []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			break
		}
		switch {
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			return nil, fmt.Errorf("%s holds a private key (PEM %q); want certificates only", path, block.Type)
		case block.Type != "CERTIFICATE":
			return nil, fmt.Errorf("%s: PEM block %q; want CERTIFICATE blocks only", path, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return certs, nil
}

// loadSignerRoots reads signing.signer_ca_files; nil (any CA) when none is
// named.
func loadSignerRoots(files []string) (*x509.CertPool, error) {
	return loadCAFiles("signing.signer_ca_files", files)
}

// loadAttestationRoots reads token.attestation_roots; nil when none is
// named.
func loadAttestationRoots(files []string) (*x509.CertPool, error) {
	return loadCAFiles("token.attestation_roots", files)
}

// loadCAFiles reads the CA files of field into one pool; nil when none is
// named.
func loadCAFiles(field string, files []string) (*x509.CertPool, error) {
	certs, err := loadCertList(field, files)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// loadCertList reads the certificates of the files of field, in order.
func loadCertList(field string, files []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	var errs problems
	for _, f := range files {
		certs, err := readCertificates(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			continue
		}
		out = append(out, certs...)
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// loadBrokerFiles reads what the broker session needs from files: the
// password and the TLS configuration (nil without ca_file: Validate has
// made sure no TLS broker is then configured, so the system's roots are
// never used).
func loadBrokerFiles(b BrokerConfig) (password string, tc *tls.Config, err error) {
	var errs problems
	if b.PasswordFile != "" {
		if password, err = readPassword(b.PasswordFile); err != nil {
			errs = append(errs, fmt.Errorf("broker.password_file: %w", err))
		}
	}
	if b.CAFile != "" {
		if tc, err = loadBrokerTLS(b); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errs.err(); err != nil {
		return "", nil, err
	}
	return password, tc, nil
}

// readPassword reads a password file as tekend always has: the first and
// only line, surrounding white space trimmed.
func readPassword(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pw := strings.TrimSpace(string(raw))
	switch {
	case pw == "":
		return "", fmt.Errorf("%s is empty", path)
	case strings.ContainsAny(pw, "\r\n"):
		return "", fmt.Errorf("%s holds more than one line; want the password alone", path)
	}
	return pw, nil
}

// loadBrokerTLS checks each TLS file on its own, so that the error names
// the file at fault, then builds the configuration with the transport's
// TLSConfig, which holds the policy (pinned CA, TLS 1.2 at least).
func loadBrokerTLS(b BrokerConfig) (*tls.Config, error) {
	var errs problems
	if _, err := readCertificates(b.CAFile); err != nil {
		errs = append(errs, fmt.Errorf("broker.ca_file: %w", err))
	}
	if b.CertFile != "" && b.KeyFile != "" {
		if err := checkKeyPair("broker", b.CertFile, b.KeyFile); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	tc, err := transport.TLSConfig(b.CAFile, b.CertFile, b.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("broker TLS: %w", err)
	}
	return tc, nil
}

// checkKeyPair makes sure the client certificate parses, the key file
// holds a private key, and the key is the certificate's; section names
// the configuration table the two files are set in.
func checkKeyPair(section, certFile, keyFile string) error {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("%s.cert_file: %w", section, err)
	}
	if _, err := parseCertificates(certFile, certPEM); err != nil {
		return fmt.Errorf("%s.cert_file: %w", section, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("%s.key_file: %w", section, err)
	}
	if _, ok := privateKeyBlock(keyPEM); !ok {
		return fmt.Errorf("%s.key_file: %s holds no PEM private key", section, keyFile)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("%s.key_file: %s with %s.cert_file %s: %w", section, keyFile, section, certFile, err)
	}
	return nil
}

// loadWebConfig checks metrics.web_config (Prometheus exporter-toolkit
// format) as the metrics server will read it: without this, a bad file
// would stop tekend only once it served, after the store and the broker
// were opened.
func loadWebConfig(path string) error {
	if path == "" {
		return nil
	}
	if err := web.Validate(path); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) { // names the file already
			return fmt.Errorf("metrics.web_config: %w", err)
		}
		return fmt.Errorf("metrics.web_config: %s: %w", path, err)
	}
	return nil
}
