package daemon

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/queue"
)

// trust is what the terminal believes: the dispatcher keys its jobs must be
// signed with, and the CAs its officials' certificates must chain to.
type trust struct {
	verifier    *api.Verifier
	signerRoots *x509.CertPool // nil: any CA
	// signerCAs are the certificates of signerRoots, for the whole chain
	// up to a root the revocation checks and the validation data need
	// (chainOf).
	signerCAs []*x509.Certificate
	tokens    tokenRules // what a token must be before it signs (tokenpolicy.go)
}

// loadTrust reads the dispatcher keys and the signer CAs (files.go), and
// reports every bad file at once.
func loadTrust(cfg Config, now func() time.Time) (trust, error) {
	keys, keyErr := loadDispatcherKeys(cfg.Dispatcher.KeyFiles)
	roots, rootErr := loadSignerRoots(cfg.Signing.SignerCAFiles)
	cas, _ := loadCertList("signing.signer_ca_files", cfg.Signing.SignerCAFiles) // its errors are rootErr's
	attestRoots, attestErr := loadAttestationRoots(cfg.Token.AttestationRoots)
	if err := (problems{keyErr, rootErr, attestErr}).err(); err != nil {
		return trust{}, err
	}
	set, err := api.KeySet(keys...)
	if err != nil {
		return trust{}, fmt.Errorf("dispatcher.key_files: %w", err)
	}
	return trust{verifier: &api.Verifier{
		Keys: set, Terminal: cfg.TerminalID, Now: now,
		Skew: time.Duration(cfg.Dispatcher.ClockSkew), MaxContentBytes: cfg.Dispatcher.MaxJobBytes,
		AllowHashOnly: cfg.Dispatcher.AllowHashOnly,
		// The Job of v 2: paraf and ttd marks, anchors, the jabatan and
		// the last signer's lock are drawn and placed by the signing flow
		// (sign.go appearance, padesOptions).
		Marks: true,
	}, signerRoots: roots, signerCAs: cas, tokens: tokenRulesOf(cfg.Token, attestRoots)}, nil
}

// envelopes opens stored jobs: the stored envelope is verified again as it
// was verified on arrival, so the documents shown and signed are exactly
// the ones the dispatcher signed, whatever happened to the file since.
type envelopes struct{ verifier envelopeVerifier }

func (e envelopes) open(j queue.Job) (*api.Job, error) {
	inForce, err := verifierOf(e.verifier) // the keys a reload left (reload.go)
	if err != nil {
		return nil, err
	}
	v := *inForce
	v.Now = func() time.Time { return j.ReceivedAt }
	job, _, err := v.VerifyJob(j.Envelope)
	if err != nil {
		return nil, fmt.Errorf("re-verify stored job %s: %w", j.ID, err)
	}
	return job, nil
}

// certPolicy decides whether an official's certificate may sign now.
type certPolicy struct {
	roots *x509.CertPool // nil: any CA
	live  *liveTrust     // when set, its signer CAs, as a reload left them, in place of roots
	now   func() time.Time
	log   *slog.Logger
}

// check says why a signer certificate cannot sign now, or nil.
func (p certPolicy) check(cert *x509.Certificate) *kiosk.Message {
	now := p.now()
	date := func(t time.Time) map[string]string { return map[string]string{"date": t.Format("2006-01-02")} }
	switch {
	case now.After(cert.NotAfter):
		return &kiosk.Message{Code: kiosk.CodeCertExpired, Params: date(cert.NotAfter)}
	case now.Before(cert.NotBefore):
		return &kiosk.Message{Code: kiosk.CodeCertNotYetValid, Params: date(cert.NotBefore)}
	case cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0:
		return &kiosk.Message{Code: kiosk.CodeCertUsage}
	}
	roots := p.roots
	if p.live != nil {
		roots = p.live.load().signerRoots
	}
	if roots != nil {
		_, err := cert.Verify(x509.VerifyOptions{
			Roots: roots, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			p.log.Info("signer certificate not trusted", "err", err)
			return &kiosk.Message{Code: kiosk.CodeCertUntrusted}
		}
	}
	return nil
}
