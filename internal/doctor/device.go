package doctor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/device"
)

// pcscSocketEnv names the variable libpcsclite reads for pcscd's socket.
const pcscSocketEnv = "PCSCLITE_CSOCK_NAME"

// A certificate closer to its end than this is worth a warning: renewing
// one takes the PKI team a while.
const certRenewal = 30 * 24 * time.Hour

// tokens checks pcscd, the readers and every token present, through the
// device layer tekend uses. Reading a token needs no PIN and changes
// nothing on it.
func (d *checkup) tokens(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	toks, err := device.Open(ctx, device.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		d.report(HealthFail, "pcscd", err.Error(), "run again")
		return
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.o.Timeout)
		defer cancel()
		_ = toks.Close(cctx)
	}()
	socket := os.Getenv(pcscSocketEnv)
	if socket == "" {
		socket = "/run/pcscd/pcscd.comm"
	}
	readers, err := toks.Readers(ctx)
	switch {
	case errors.Is(err, device.ErrPCSCUnavailable):
		d.report(HealthFail, "pcscd", "not reachable at "+socket+": "+err.Error(),
			"sudo systemctl start pcscd.socket (package pcscd): tekend reaches tokens only through it")
		return
	case err != nil && !errors.Is(err, device.ErrNoReader):
		d.report(HealthFail, "pcscd", err.Error(), "journalctl -u pcscd -e")
		return
	}
	d.report(HealthOK, "pcscd", "answers at "+socket, "")
	if len(readers) == 0 {
		d.report(HealthFail, "readers", "pcscd sees no smart card reader", "plug in the reader; pcsc_scan (package pcsc-tools) shows what pcscd sees")
		return
	}
	d.report(HealthOK, "readers", fmt.Sprintf("%d: %s", len(readers), strings.Join(readers, ", ")), "")
	present, err := toks.Present(ctx)
	if err != nil {
		d.report(HealthFail, "token", err.Error(), "run again; journalctl -u pcscd -e")
		return
	}
	if len(present) == 0 {
		d.report(HealthWarn, "token", "none in any reader", "tap or insert an official's token and run again to check its certificate and PIN")
		return
	}
	for _, r := range present {
		d.token(ctx, toks, r)
	}
}

// token reads one token and judges it by tekend's rules: a signing
// certificate tekend would accept now (validity, key usage, the chain to
// signing.signer_ca_files) and PIN tries left.
func (d *checkup) token(ctx context.Context, toks *device.Tokens, reader string) {
	what := "token in " + reader
	info, err := toks.Info(ctx, reader)
	switch {
	case errors.Is(err, device.ErrCardBusy):
		d.report(HealthWarn, what, "busy: another program holds it (tekend, while it signs)", "run again in a moment")
		return
	case errors.Is(err, device.ErrNoToken), errors.Is(err, device.ErrTokenRemoved):
		d.report(HealthWarn, what, "left the reader while it was read", "keep it on the reader and run again")
		return
	case err != nil:
		d.report(HealthFail, what, err.Error(), "take the token out and in again; is its PIV application on (ykman info)?")
		return
	}
	cert := info.SignCert
	if cert == nil {
		d.report(HealthFail, what, fmt.Sprintf("serial %d: no certificate in slot 9c (digital signature)", info.Serial),
			"the province's PKI team enrols the token for signing")
		return
	}
	health, notes, fixes := HealthOK, []string{}, []string{}
	note := func(v Health, text, fix string) {
		health = max(health, v)
		notes, fixes = append(notes, text), append(fixes, fix)
	}
	now, chain, cfg := d.o.Now(), "", d.cfg
	if d.signerCAsBroken() {
		// The configuration's finding says why; judge the rest.
		cfg.Signing.SignerCAFiles = nil
		note(HealthWarn, "chain not checked: signing.signer_ca_files does not load", "")
	}
	if err := daemon.CheckSignerCertificate(cfg, cert, now); err != nil {
		note(HealthFail, "tekend refuses it: "+err.Error(), "the official needs a certificate from a CA of signing.signer_ca_files, valid now (the PKI team)")
	} else {
		if len(cfg.Signing.SignerCAFiles) > 0 {
			chain = ", chains to signing.signer_ca_files"
		}
		if left := cert.NotAfter.Sub(now); left < certRenewal {
			note(HealthWarn, fmt.Sprintf("expires in %d days", int(left.Hours()/24)), "ask the PKI team for a new certificate")
		}
	}
	switch n := info.PINRetries; {
	case n == 0:
		note(HealthFail, "PIN blocked", "unblock it with the PUK (ykman piv access unblock-pin)")
	case n == 1:
		note(HealthWarn, "1 PIN try left: the next wrong PIN blocks it", "the official must be sure of the PIN")
	case n < 0:
		note(HealthWarn, "PIN tries unknown (the PIN is verified now)", "take the token out and in again, then run again")
	default:
		notes = append(notes, fmt.Sprintf("%d PIN tries left", n))
	}
	detail := fmt.Sprintf("%s (NIP %s), serial %d, valid until %s%s; %s", cert.Subject.CommonName, cert.Subject.SerialNumber,
		info.Serial, cert.NotAfter.UTC().Format(time.DateOnly), chain, strings.Join(notes, "; "))
	d.report(health, what, detail, strings.Join(nonEmpty(fixes), "; "))
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// signerCAsBroken reports whether the configuration check found a signer
// CA file that does not load.
func (d *checkup) signerCAsBroken() bool {
	for _, err := range d.check.Errors {
		if strings.HasPrefix(err.Error(), "signing.signer_ca_files") {
			return true
		}
	}
	return false
}
