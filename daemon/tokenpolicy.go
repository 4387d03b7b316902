package daemon

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
)

// A token signs only once IT has set it up (docs/ENROLMENT.md): its factory
// PIN and PUK changed and, where the terminal asks for it, its signing key
// attested as made on the token with PIN policy always. The official reads
// one plain sentence (err_token_not_set_up); the reason, for IT, goes to the
// log and the status. Nothing here reads or logs a PIN.

// tokenRules are the [token] section in force, with its roots loaded.
type tokenRules struct {
	refuseDefaultPIN   bool
	requireAttestation bool
	roots              *x509.CertPool // token.attestation_roots; nil when none
}

func tokenRulesOf(c TokenConfig, roots *x509.CertPool) tokenRules {
	return tokenRules{refuseDefaultPIN: c.RefuseDefaultPIN, requireAttestation: c.RequireAttestation, roots: roots}
}

// attestationReader reads a slot's attestation certificate and the token's
// attestation intermediate (slot f9).
type attestationReader interface {
	Attestation(ctx context.Context, reader string, slot device.Slot) (leaf, intermediate *x509.Certificate, err error)
}

var _ attestationReader = deviceTokens{}

// Attestation reads slot's attestation in an Admin session: a read, no
// PIN, no management key.
func (t deviceTokens) Attestation(ctx context.Context, reader string, slot device.Slot) (leaf, intermediate *x509.Certificate, err error) {
	err = t.Tokens.Admin(ctx, reader, func(a *device.Admin) error {
		var aerr error
		leaf, intermediate, aerr = a.Attestation(slot)
		return aerr
	})
	return leaf, intermediate, err
}

// tokenPolicy decides whether a token IT has handed out may sign. Its zero
// value lets every token sign.
type tokenPolicy struct {
	rules  tokenRules
	live   *liveTrust // when set, its token rules, as a reload left them, in place of rules
	attest attestationReader
}

// tokenVerdict is what the policy found about one token.
type tokenVerdict struct {
	// refused is what the official reads when the token may not sign,
	// else nil.
	refused *kiosk.Message
	// reason is why it was refused, for IT.
	reason string
	// warnings are what IT should know about a token that may sign.
	warnings []string
}

func refuse(format string, args ...any) tokenVerdict {
	return tokenVerdict{refused: &kiosk.Message{Code: kiosk.CodeTokenNotSetUp}, reason: fmt.Sprintf(format, args...)}
}

// check decides about the token on reader, which info describes.
func (p tokenPolicy) check(ctx context.Context, reader string, info device.Info) tokenVerdict {
	r := p.rules
	if p.live != nil {
		r = p.live.load().tokens
	}
	var v tokenVerdict
	if r.refuseDefaultPIN {
		d := info.Defaults
		switch {
		case !d.Known:
			v.warnings = append(v.warnings, fmt.Sprintf("cannot tell whether PIN and PUK are still the factory defaults (firmware %s has no PIN metadata)", info.Version))
		case d.PIN && d.PUK:
			return refuse("PIN and PUK are still the factory defaults")
		case d.PIN:
			return refuse("PIN is still the factory default")
		case d.PUK:
			// Anyone holding the token resets the PIN with the default PUK.
			return refuse("PUK is still the factory default")
		}
		if d.Known && d.ManagementKey {
			v.warnings = append(v.warnings, "management key is still the factory default")
		}
	}
	if r.requireAttestation {
		if reason := p.attested(ctx, reader, info, r.roots); reason != "" {
			return refuse("%s", reason)
		}
	}
	return v
}

// attested says why the 9c key of the token on reader is not attested as
// the policy wants, or "".
func (p tokenPolicy) attested(ctx context.Context, reader string, info device.Info, roots *x509.CertPool) string {
	switch {
	case roots == nil: // Validate requires them; a policy built without is a mistake
		return "attestation required but no token.attestation_roots loaded"
	case p.attest == nil:
		return "attestation required but this terminal cannot read attestations"
	}
	leaf, inter, err := p.attest.Attestation(ctx, reader, device.SlotSignature)
	if err != nil {
		return fmt.Sprintf("no attestation for slot 9c: %v", err)
	}
	a, err := device.VerifyAttestation(leaf, inter, roots)
	if err != nil {
		return err.Error()
	}
	switch {
	case a.Serial != info.Serial:
		return fmt.Sprintf("attestation is of token %d, not of this token %d", a.Serial, info.Serial)
	case !sameKey(a.PublicKey, info.SignCert.PublicKey):
		return "the 9c certificate's key is not the attested key"
	case a.PINPolicy != device.PINPolicyAlways:
		return fmt.Sprintf("9c key's PIN policy is %s, want always", pinPolicyName(a.PINPolicy))
	}
	return ""
}

func sameKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && b != nil && k.Equal(b)
}

func pinPolicyName(p device.PINPolicy) string {
	switch p {
	case device.PINPolicyNever:
		return "never"
	case device.PINPolicyOnce:
		return "once"
	case device.PINPolicyAlways:
		return "always"
	}
	return "unknown"
}

// report tells IT what the verdict says about the token: the log, and the
// status's last error through setLastError.
func (v tokenVerdict) report(log *slog.Logger, setLastError func(string), reader string, serial uint32) {
	token := strconv.FormatUint(uint64(serial), 10)
	if v.refused != nil {
		log.Warn("token refused: not set up for signing", "reader", reader, "serial", serial, "reason", v.reason)
		setLastError("token " + token + " refused: " + v.reason)
		return
	}
	for _, w := range v.warnings {
		log.Warn("token set-up unverified", "reader", reader, "serial", serial, "warning", w)
		setLastError("token " + token + ": " + w)
	}
}
