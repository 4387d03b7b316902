package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"

	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/signature/revocation"
)

// revocationChecker is signature/revocation's Checker as the daemon uses
// it.
type revocationChecker interface {
	Check(ctx context.Context, chain []*x509.Certificate, after time.Time) (*revocation.Evidence, error)
}

var _ revocationChecker = (*revocation.Checker)(nil)

// tapCheck decides, at each tap, whether the certificate or a CA above it
// is revoked, before the official is asked for the PIN. It runs off the
// main loop and holds no card: the token was read already, and the
// answer comes from the network.
type tapCheck struct {
	checker revocationChecker
	require bool // revocation.check = require: no status, no signing
	// responder is revocation.ocsp_responder: every certificate has one.
	responder bool
	timeout   time.Duration
	cas       signerCAs // the signer CAs in force
	now       func() time.Time
	log       *slog.Logger
}

// chainToCheck is cert's chain when it names anywhere to ask, else nil: a
// chain whose certificates name no OCSP responder or CRL distribution
// point (and no responder configured), or no chain at all (no signer CAs;
// or one certPolicy refused already), has nothing to wait for, so the
// official is not made to.
func (c *tapCheck) chainToCheck(cert *x509.Certificate) []*x509.Certificate {
	anchors, cas := c.cas()
	chain, err := chainOf(cert, anchors, cas, c.now())
	if err != nil || chain == nil {
		return nil
	}
	for _, x := range chain[:len(chain)-1] {
		if c.responder || len(x.OCSPServer) > 0 || len(x.CRLDistributionPoints) > 0 {
			return chain
		}
	}
	return nil
}

// problem is why the certificate of chain (from chainToCheck) cannot
// sign, or nil.
func (c *tapCheck) problem(ctx context.Context, chain []*x509.Certificate) *kiosk.Message {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.checker.Check(ctx, chain, time.Time{})
	return c.message(err)
}

// message is what the official reads for the checker's answer.
func (c *tapCheck) message(err error) *kiosk.Message {
	var revoked *revocation.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &revoked):
		c.log.Warn("signer certificate revoked", "subject", revoked.Cert.Subject.String(), "revoked_at", revoked.RevokedAt, "reason", revoked.Reason)
		return &kiosk.Message{Code: kiosk.CodeCertRevoked, Params: map[string]string{"date": revoked.RevokedAt.Format("2006-01-02")}}
	case errors.Is(err, revocation.ErrUnknown):
		c.log.Warn("signer certificate unknown to its CA's responder", "err", err)
		return &kiosk.Message{Code: kiosk.CodeCertStatusUnknown}
	case c.require:
		c.log.Warn("signer certificate status unavailable; revocation.check = require refuses it", "err", err)
		return &kiosk.Message{Code: kiosk.CodeCertStatusUnavailable}
	}
	c.log.Warn("signer certificate status unavailable; signing anyway (revocation.check = prefer)", "err", err)
	return nil
}

// checkRevocation runs the tap check for the token of arrival gen and
// shows its answer; the flow's checks wait group owns it.
func (f *flow) checkRevocation(ctx context.Context, gen uint64, reader string, chain []*x509.Certificate) {
	msg := f.tapCheck.problem(ctx, chain)
	f.mu.Lock()
	changed := f.p.revocationChecked(gen, reader, msg)
	f.mu.Unlock()
	if changed {
		f.publish(ctx)
	}
}

// wait stops the list refreshes and returns once every check the flow
// started has ended; the main loop calls it on its way out, after ctx
// ended.
func (f *flow) wait() {
	f.refresh.stop()
	f.checks.Wait()
}
