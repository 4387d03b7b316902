package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/internal/ctl"
)

const enrolHelp = `Usage: tekenctl token enrol [--reader R] --name NAME --nip NIP [--profile FILE] [flags]

Prepares an official's PIV token (a YubiKey) for signing, step by step:
shows the token; changes the PIN and PUK while they are the factory
defaults; replaces a factory management key with a random one kept
PIN-protected on the token (as ykman does); makes a new key in slot 9c on
the token (PIN always); and writes, into --out-dir, NIP-csr.pem, a
certificate request signed by that key (CN = the name, serialNumber = the
NIP, O, OU, C, ST, L from the flags or the profile), and
NIP-attestation.pem, the token's proof that it made the key (two
certificates: the key's attestation and the token's own). Hand both files
to the CA; import what it issues with 'tekenctl token import-cert'.

On a terminal it asks for what the flags do not give: name, NIP, the PIN
(when not the default), and each new PIN and PUK twice, never echoed.
Without a terminal every secret comes from a file (its first line), never
from the command line or the environment: make it mode 0600 or pass it by
process substitution. A new PIN or PUK is 6 to 8 letters or digits.

It refuses to make a key over a key already in slot 9c unless --replace;
a certificate in 9c must be deleted first (ykman piv certificates delete
9c), since it would stay beside the new key. It creates no directory and
never overwrites a file. The profile is TOML with the keys o, ou, c, st
and l; flags win over it.

Examples:
  tekenctl token enrol --name "Siti Rahmawati, S.Sos." --nip 198703152010012003 --profile setda.toml
  tekenctl token enrol --reader "Yubico YubiKey OTP+FIDO+CCID 00 00" --key-type p384 --touch cached
  tekenctl token enrol --name "Budi" --nip 197501012000031001 --org "Pemerintah Provinsi Sulawesi Tenggara" \
      --new-pin-file <(pass show teken/budi-pin) --new-puk-file <(pass show teken/budi-puk) --out-dir ./csr
`

const importCertHelp = `Usage: tekenctl token import-cert [--reader R] --ca BUNDLE [--pin-file FILE] [--replace] CERT.pem

Writes the certificate the CA issued into slot 9c of the token, after
checking that tekend will sign with it: valid now (not expired, not yet
valid refused), key usage digitalSignature or nonRepudiation, not a CA
certificate, chaining to BUNDLE (the CA certificates tekend's
signing.signer_ca_files lists), and for the key in slot 9c. Anything else
is refused with the reason. It asks for the PIN on a terminal, or reads it
from --pin-file. A different certificate already in 9c is kept unless
--replace.

Examples:
  tekenctl token import-cert --ca /etc/teken/signer-ca.pem 198703152010012003.pem
  tekenctl token import-cert --ca ca-bundle.pem --pin-file <(pass show teken/siti-pin) siti.pem
`

const tokenInfoHelp = `Usage: tekenctl token info [--reader R]

Shows the token: serial, firmware, form factor, PIN and PUK tries left,
whether PIN, PUK and management key are still the factory defaults, and
the certificate in slot 9c. Needs no PIN and changes nothing.

Examples:
  tekenctl token info
  tekenctl token info --reader "Virtual PCD 00 00"
`

// openTokens opens the device layer for one command.
func openTokens(ctx context.Context, e env) (*device.Tokens, func(), error) {
	toks, err := device.Open(ctx, device.Options{Logger: e.log})
	if err != nil {
		return nil, nil, err
	}
	return toks, func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = toks.Close(cctx)
	}, nil
}

// readSecretFlag reads the secret a --*-file flag names; nil when unset.
func readSecretFlag(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return ctl.ReadSecretFile(path)
}

func runTokenEnrol(ctx context.Context, e env, args []string) int {
	const name = "token enrol"
	fs := flags(e, name, enrolHelp)
	reader := fs.String("reader", "", "the token's `READER` (default: the only token present)")
	official := fs.String("name", "", "the official's `NAME` (the request's CN)")
	nip := fs.String("nip", "", "the official's `NIP`, 18 digits (the request's serialNumber)")
	org := fs.String("org", "", "the `ORGANISATION` (O), over the profile's o")
	unit := fs.String("org-unit", "", "the `UNIT` (OU), over the profile's ou")
	profile := fs.String("profile", "", "read o, ou, c, st and l from the TOML `FILE`")
	keyType := fs.String("key-type", "p256", "the new key: `TYPE` p256, p384, rsa2048 or ed25519 (firmware 5.7; see docs/ENROLMENT.md before choosing it)")
	touch := fs.String("touch", "never", "touch `POLICY` of the new key: never, always or cached")
	outDir := fs.String("out-dir", ".", "write the request and attestation into `DIR` (must exist)")
	replace := fs.Bool("replace", false, "make a new key over a key in slot 9c")
	pinFile := fs.String("pin-file", "", "read the current PIN from `FILE` (when it is not the default)")
	newPINFile := fs.String("new-pin-file", "", "read the new PIN from `FILE`")
	newPUKFile := fs.String("new-puk-file", "", "read the new PUK from `FILE`")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageErr(e, name, "unexpected argument %q", fs.Arg(0))
	}
	alg, err := ctl.ParseKeyType(*keyType)
	if err != nil {
		return usageErr(e, name, "--key-type: %v", err)
	}
	tp, err := ctl.ParseTouch(*touch)
	if err != nil {
		return usageErr(e, name, "--touch: %v", err)
	}
	holder := ctl.Holder{Name: *official, NIP: *nip}
	if *profile != "" {
		f, err := os.Open(*profile)
		if err != nil {
			return fail(e, name, fmt.Errorf("profile: %w", err))
		}
		holder.Profile, err = ctl.ParseProfile(f)
		f.Close()
		if err != nil {
			return fail(e, name, fmt.Errorf("%s: %w", *profile, err))
		}
	}
	if *org != "" {
		holder.Profile.Organization = *org
	}
	if *unit != "" {
		holder.Profile.Unit = *unit
	}
	var sec ctl.Secrets
	defer func() { clear(sec.PIN); clear(sec.NewPIN); clear(sec.NewPUK) }()
	for _, s := range []struct {
		dst  *[]byte
		path string
	}{{&sec.PIN, *pinFile}, {&sec.NewPIN, *newPINFile}, {&sec.NewPUK, *newPUKFile}} {
		if *s.dst, err = readSecretFlag(s.path); err != nil {
			return fail(e, name, err)
		}
	}
	toks, closeToks, err := openTokens(ctx, e)
	if err != nil {
		return fail(e, name, err)
	}
	defer closeToks()
	res, err := ctl.Enrol(ctx, toks, ctl.EnrolOptions{Reader: *reader, Holder: holder, Algorithm: alg, Touch: tp,
		OutDir: *outDir, Replace: *replace, Secrets: sec, Prompt: terminalPrompter(e), Out: e.stdout})
	sec = ctl.Secrets{} // Enrol zeroed them
	if err != nil {
		return fail(e, name, err)
	}
	fmt.Fprintf(e.stdout, `
Token %d enrolled. Hand these two files to the CA:
  certificate request:  %s
  attestation:          %s
  public key SHA-256:   %s
When the certificate comes back, put it on the token:
  tekenctl token import-cert --ca CA-BUNDLE.pem CERTIFICATE.pem
`, res.Serial, res.CSRFile, res.AttestationFile, res.PublicKeySHA256)
	return exitOK
}

func runTokenImportCert(ctx context.Context, e env, args []string) int {
	const name = "token import-cert"
	fs := flags(e, name, importCertHelp)
	reader := fs.String("reader", "", "the token's `READER` (default: the only token present)")
	bundle := fs.String("ca", "", "the CA certificates `BUNDLE` (PEM) the certificate must chain to")
	pinFile := fs.String("pin-file", "", "read the PIN from `FILE` instead of asking")
	replace := fs.Bool("replace", false, "overwrite another certificate in slot 9c")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	switch {
	case *bundle == "":
		return usageErr(e, name, "no --ca BUNDLE")
	case fs.NArg() == 0:
		return usageErr(e, name, "want the certificate file CERT.pem")
	case fs.NArg() > 1:
		return usageErr(e, name, "unexpected argument %q", fs.Arg(1))
	}
	pin, err := readSecretFlag(*pinFile)
	if err != nil {
		return fail(e, name, err)
	}
	toks, closeToks, err := openTokens(ctx, e)
	if err != nil {
		clear(pin)
		return fail(e, name, err)
	}
	defer closeToks()
	cert, err := ctl.ImportCert(ctx, toks, ctl.ImportOptions{Reader: *reader, CertFile: fs.Arg(0), CABundle: *bundle,
		Replace: *replace, PIN: pin, Prompt: terminalPrompter(e), Out: e.stdout})
	if err != nil {
		return fail(e, name, err)
	}
	fmt.Fprintf(e.stdout, "Certificate for %s (serialNumber %s, valid until %s) is in slot 9c.\n",
		cert.Subject.CommonName, cert.Subject.SerialNumber, cert.NotAfter.Format("2006-01-02"))
	return exitOK
}

func runTokenInfo(ctx context.Context, e env, args []string) int {
	const name = "token info"
	fs := flags(e, name, tokenInfoHelp)
	reader := fs.String("reader", "", "the token's `READER` (default: the only token present)")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageErr(e, name, "unexpected argument %q", fs.Arg(0))
	}
	toks, closeToks, err := openTokens(ctx, e)
	if err != nil {
		return fail(e, name, err)
	}
	defer closeToks()
	if err := ctl.TokenInfo(ctx, toks, *reader, e.stdout); err != nil {
		return fail(e, name, err)
	}
	return exitOK
}

// terminalPrompter asks on the terminal stdin is, or returns nil (no
// prompts: every secret must come from a file) when stdin is not one.
func terminalPrompter(e env) ctl.Prompter {
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &ttyPrompter{f: f, out: e.stderr, log: e.log}
}

// ttyPrompter reads answers from a terminal; secrets with echo off.
type ttyPrompter struct {
	f   *os.File
	out io.Writer
	log *slog.Logger
}

// Ask implements ctl.Prompter.
func (p *ttyPrompter) Ask(ctx context.Context, question string) (string, error) {
	fmt.Fprint(p.out, question)
	b, err := p.read(ctx, func() ([]byte, error) { return ctl.ReadLine(p.f) })
	s := string(b)
	clear(b)
	return s, err
}

// AskSecret implements ctl.Prompter.
func (p *ttyPrompter) AskSecret(ctx context.Context, question string) ([]byte, error) {
	fd := int(p.f.Fd())
	saved, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	// Echo goes off before the question shows, not after: an answer
	// typed (or pasted) the moment the question appears would otherwise
	// be echoed before the read turned echo off.
	if err := echoOff(fd); err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	fmt.Fprint(p.out, question)
	b, err := p.read(ctx, func() ([]byte, error) { return ctl.ReadLine(p.f) })
	fmt.Fprintln(p.out) // the operator's Enter was not echoed
	// Restored however the read ended: on Ctrl-C the read is still
	// blocked, and the echo must come back now.
	_ = term.Restore(fd, saved)
	return b, err
}

// echoOff turns the terminal's echo off and keeps line editing and
// signals on, as term.ReadPassword does for the time of its read.
func echoOff(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Lflag &^= unix.ECHO
	t.Lflag |= unix.ICANON | unix.ISIG
	t.Iflag |= unix.ICRNL
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// read runs one blocking terminal read so that Ctrl-C (ctx) can end the
// wait. A read on a terminal cannot be interrupted: on cancellation the
// goroutine stays blocked until the process, which is ending, exits; the
// buffered channel lets it finish without a reader.
func (p *ttyPrompter) read(ctx context.Context, f func() ([]byte, error)) ([]byte, error) {
	type answer struct {
		b   []byte
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		b, err := f()
		ch <- answer{b, err}
	}()
	select {
	case a := <-ch:
		if errors.Is(a.err, io.EOF) {
			return nil, ctl.ErrNoAnswer
		}
		return a.b, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
