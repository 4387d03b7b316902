package validation

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tekenid/teken/signature/revocation"
)

// Trust is what signatures are checked against.
type Trust struct {
	Roots *x509.CertPool // the CAs signers chain to
	// TSARoots are the CAs timestamp authorities chain to; nil means
	// Roots.
	TSARoots *x509.CertPool
	// CRLs are revocation lists of the signers' CAs, as --crl files give
	// them.
	CRLs []*x509.RevocationList
	// Online, when set, is asked for the status of a signer whose
	// embedded validation data and CRLs do not decide it; nil fetches
	// nothing.
	Online *revocation.Checker
	// OnlineTimeout bounds one online check; zero means 30 seconds.
	OnlineTimeout time.Duration
	Now           time.Time // the validation time; zero means now
}

func (t Trust) now() time.Time {
	if t.Now.IsZero() {
		return time.Now()
	}
	return t.Now
}

func (t Trust) tsaRoots() *x509.CertPool {
	if t.TSARoots != nil {
		return t.TSARoots
	}
	return t.Roots
}

// ErrNoSignature says a result holds no signature for a document.
var ErrNoSignature = errors.New("the result holds no signature for this document")

// LoadRoots reads a PEM CA bundle.
func LoadRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, errors.New("no CA bundle: set --ca, TEKEN_SIGNER_CA, TEKEN_CA or signer_ca in the config file")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", path)
	}
	return p, nil
}

// LoadCRL reads a certificate revocation list, PEM ("X509 CRL") or DER.
func LoadCRL(path string) (*x509.RevocationList, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	der := raw
	if b, _ := pem.Decode(raw); b != nil {
		if b.Type != "X509 CRL" {
			return nil, fmt.Errorf("CRL %s: PEM block %q, want X509 CRL", path, b.Type)
		}
		der = b.Bytes
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: %w", path, err)
	}
	return l, nil
}
