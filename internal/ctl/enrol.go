package ctl

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tekenid/teken/device"
)

// Factory credentials of a PIV token (YubiKey defaults).
var (
	factoryPIN = []byte("123456")
	factoryPUK = []byte("12345678")
)

// Secrets are the PINs and PUK enrolment needs, from files or the terminal.
// Nil means not given: it is asked for when a Prompter is there, else the
// step that needs it fails saying which flag gives it. Enrol zeroes them.
type Secrets struct {
	PIN    []byte // the current PIN, when it is not the factory default
	NewPIN []byte // the PIN to set
	NewPUK []byte // the PUK to set
}

func (s *Secrets) clear() {
	clear(s.PIN)
	clear(s.NewPIN)
	clear(s.NewPUK)
}

// EnrolOptions configure Enrol.
type EnrolOptions struct {
	// Reader names the token's reader; "" means the only token present.
	Reader string
	// Holder is the official; a Name or NIP left empty is asked for.
	Holder Holder
	// Algorithm and Touch are the new key's; zero means P-256, never.
	Algorithm device.KeyAlgorithm
	Touch     device.TouchPolicy
	// OutDir receives NIP-csr.pem and NIP-attestation.pem; it must exist.
	OutDir string
	// Replace allows a new key over a key in slot 9c (not over a
	// certificate, which would stay beside the new key).
	Replace bool
	Secrets Secrets
	// Prompt asks for what is missing; nil makes Enrol non-interactive.
	Prompt Prompter
	Out    io.Writer
}

// Enrolment is what Enrol made: the files to hand to the CA.
type Enrolment struct {
	Serial          uint32
	CSRFile         string
	AttestationFile string
	// PublicKeySHA256 is the hex SHA-256 of the new key's PKIX encoding,
	// for the CA to compare with the request.
	PublicKeySHA256 string
}

// ErrSlotOccupied means slot 9c holds a key and Replace was
// not given: a new key would destroy the official's signing key.
var ErrSlotOccupied = errors.New("slot 9c already holds a key (--replace makes a new key over it)")

// Enrol prepares an official's token for signing: it shows the token,
// changes a factory PIN and PUK, replaces a factory management key with a
// random PIN-protected one, generates a key in slot 9c (PIN policy
// always), and writes a certificate request signed by that key and the
// key's attestation chain into OutDir. Everything is checked (holder,
// files, slot, secrets) before the token is changed.
func Enrol(ctx context.Context, toks *device.Tokens, o EnrolOptions) (*Enrolment, error) {
	defer o.Secrets.clear()
	if o.Algorithm == 0 {
		o.Algorithm = device.AlgorithmP256
	}
	if o.Touch == 0 {
		o.Touch = device.TouchNever
	}
	if err := checkOutDir(o.OutDir); err != nil {
		return nil, err
	}
	reader, err := pickReader(ctx, toks, o.Reader)
	if err != nil {
		return nil, err
	}
	info, occupied, err := inspect(ctx, toks, reader)
	if err != nil {
		return nil, err
	}
	ShowToken(o.Out, reader, info)
	if c := info.SignCert; c != nil {
		// Generating a key leaves the slot's certificate in place (the
		// token has no command that does both), and a certificate beside
		// a key it is not for would be shown to the official for
		// signatures no one can verify.
		return nil, fmt.Errorf("slot 9c holds a certificate (%s, until %s) that would stay beside the new key: delete it first (ykman piv certificates delete 9c), then enrol with --replace",
			c.Subject.CommonName, c.NotAfter.Format("2006-01-02"))
	}
	if occupied && !o.Replace {
		return nil, ErrSlotOccupied
	}
	if info.PINRetries == 0 {
		return nil, fmt.Errorf("token %d: %w (unblock it with the PUK: ykman piv access unblock-pin)", info.Serial, device.ErrPINBlocked)
	}
	if err := o.askHolder(ctx); err != nil {
		return nil, err
	}
	files := enrolFiles(o.OutDir, o.Holder.NIP)
	for _, p := range files {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s exists: enrol never overwrites a file (move it away or choose another --out-dir)", p)
		}
	}
	plan, err := o.plan(ctx, info)
	if err != nil {
		return nil, err
	}
	defer plan.clear()
	res, err := plan.run(ctx, toks, reader, info.Serial, o)
	if err != nil {
		return nil, err
	}
	if err := writeNewFile(files[0], res.csr); err != nil {
		return nil, fmt.Errorf("%w (the key is on the token: run again with --replace for a new request)", err)
	}
	if err := writeNewFile(files[1], res.attestation); err != nil {
		_ = os.Remove(files[0])
		return nil, fmt.Errorf("%w (the key is on the token: run again with --replace for a new request)", err)
	}
	return &Enrolment{Serial: info.Serial, CSRFile: files[0], AttestationFile: files[1], PublicKeySHA256: res.keyHash}, nil
}

// enrolFiles are the request and attestation files for nip in dir.
func enrolFiles(dir, nip string) [2]string {
	return [2]string{filepath.Join(dir, nip+"-csr.pem"), filepath.Join(dir, nip+"-attestation.pem")}
}

// pickReader returns reader, or the reader of the only token present.
func pickReader(ctx context.Context, toks *device.Tokens, reader string) (string, error) {
	if reader != "" {
		return reader, nil
	}
	present, err := toks.Present(ctx)
	if err != nil {
		return "", fmt.Errorf("find the token: %w", err)
	}
	switch len(present) {
	case 0:
		return "", fmt.Errorf("%w in any reader: insert the token (or name its reader with --reader)", device.ErrNoToken)
	case 1:
		return present[0], nil
	}
	return "", fmt.Errorf("%d tokens present (%s): choose one with --reader", len(present), strings.Join(present, ", "))
}

// inspect reads the token and whether slot 9c holds a key: a certificate,
// or a key the token attests (one it generated).
func inspect(ctx context.Context, toks *device.Tokens, reader string) (device.Info, bool, error) {
	var info device.Info
	var occupied bool
	err := toks.Admin(ctx, reader, func(a *device.Admin) error {
		var err error
		if info, err = a.Info(); err != nil {
			return err
		}
		occupied = info.SignCert != nil
		if !occupied {
			_, _, aerr := a.Attestation(device.SlotSignature)
			occupied = aerr == nil
		}
		return nil
	})
	if err != nil {
		return device.Info{}, false, fmt.Errorf("read token: %w", err)
	}
	return info, occupied, nil
}

// askHolder asks for a name or NIP not given, then validates the holder.
func (o *EnrolOptions) askHolder(ctx context.Context) error {
	ask := func(v *string, flag, question string) error {
		if *v != "" {
			return nil
		}
		if o.Prompt == nil {
			return fmt.Errorf("no %s given (--%s)", flag, flag)
		}
		a, err := o.Prompt.Ask(ctx, question)
		if err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
		*v = strings.TrimSpace(a)
		return nil
	}
	if err := ask(&o.Holder.Name, "name", "Official's name, as on the certificate (CN): "); err != nil {
		return err
	}
	if err := ask(&o.Holder.NIP, "nip", "Official's NIP (18 digits): "); err != nil {
		return err
	}
	return o.Holder.Validate()
}

// enrolPlan is what enrolment will do to the token, with the secrets each
// step needs, settled before the token is touched.
type enrolPlan struct {
	pin    []byte // the PIN to authenticate with (after any change)
	oldPIN []byte // set when the PIN is changed
	oldPUK []byte // set when the PUK is changed
	newPUK []byte
}

func (p *enrolPlan) clear() {
	clear(p.pin)
	clear(p.oldPIN)
	clear(p.newPUK)
}

// plan settles the secrets: a factory PIN or PUK must be changed (new
// values from Secrets or asked twice); a PIN that is not the factory one is
// taken from Secrets or asked once. No PIN is ever tried on the card here.
func (o *EnrolOptions) plan(ctx context.Context, info device.Info) (*enrolPlan, error) {
	s := &o.Secrets
	p := &enrolPlan{}
	fail := func(err error) (*enrolPlan, error) { p.clear(); return nil, err }
	current := s.PIN
	s.PIN = nil
	if info.Defaults.Known && info.Defaults.PIN {
		clear(current)
		current = clone(factoryPIN)
	}
	if current == nil {
		if o.Prompt == nil {
			return fail(errors.New("the PIN is not the factory default: give it with --pin-file FILE"))
		}
		var err error
		if current, err = o.Prompt.AskSecret(ctx, "PIN: "); err != nil {
			return fail(fmt.Errorf("pin: %w", err))
		}
	}
	// A token that cannot say (firmware before 5.3) still has the factory
	// PIN when that is what the operator gave.
	pinDefault := string(current) == string(factoryPIN)
	if pinDefault || s.NewPIN != nil {
		next, err := o.newSecret(ctx, &s.NewPIN, kindPIN, "--new-pin-file", factoryPIN, nil)
		if err != nil {
			clear(current)
			return fail(err)
		}
		p.oldPIN, p.pin = current, next
	} else {
		p.pin = current
	}
	if info.Defaults.Known && info.Defaults.PUK {
		next, err := o.newSecret(ctx, &s.NewPUK, kindPUK, "--new-puk-file", factoryPUK, p.pin)
		if err != nil {
			return fail(err)
		}
		p.oldPUK, p.newPUK = factoryPUK, next
	}
	return p, nil
}

// newSecret returns the new PIN or PUK from *given (taking it over) or asks
// for it.
func (o *EnrolOptions) newSecret(ctx context.Context, given *[]byte, kind, flag string, factory, avoid []byte) ([]byte, error) {
	if v := *given; v != nil {
		*given = nil
		if err := checkNewSecret(kind, v, factory); err != nil {
			clear(v)
			return nil, err
		}
		if avoid != nil && string(v) == string(avoid) {
			clear(v)
			return nil, fmt.Errorf("new %s: must differ from the PIN", kind)
		}
		return v, nil
	}
	if o.Prompt == nil {
		return nil, fmt.Errorf("the %s is the factory default and must be changed: give the new one with %s FILE", kind, flag)
	}
	return askNewSecret(ctx, o.Prompt, o.Out, kind, factory, avoid)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// enrolResult is what the token produced.
type enrolResult struct {
	csr, attestation []byte // PEM
	keyHash          string
}

// run carries out the plan in one exclusive hold of the token, which must
// still be the one inspected (serial).
func (p *enrolPlan) run(ctx context.Context, toks *device.Tokens, reader string, serial uint32, o EnrolOptions) (*enrolResult, error) {
	var res enrolResult
	step := func(what string) { fmt.Fprintf(o.Out, "  %s\n", what) }
	fmt.Fprintf(o.Out, "Enrolling token %d for %s (NIP %s):\n", serial, o.Holder.Name, o.Holder.NIP)
	err := toks.Admin(ctx, reader, func(a *device.Admin) error {
		info, err := a.Info()
		if err != nil {
			return err
		}
		if info.Serial != serial {
			return fmt.Errorf("the token in %s is now %d, not %d: start again", reader, info.Serial, serial)
		}
		if p.oldPIN != nil {
			if err := a.ChangePIN(p.oldPIN, p.pin); err != nil {
				return fmt.Errorf("change pin: %w", err)
			}
			step("PIN changed")
		}
		if p.newPUK != nil {
			if err := a.ChangePUK(p.oldPUK, p.newPUK); err != nil {
				return fmt.Errorf("change puk: %w", err)
			}
			step("PUK changed")
		}
		if err := a.ProtectManagementKey(p.pin); err != nil {
			if errors.Is(err, device.ErrManagementKeyUnknown) {
				return fmt.Errorf("%w: reset the token's PIV application (ykman piv reset) and enrol it afresh", err)
			}
			return fmt.Errorf("management key: %w", err)
		}
		step("management key random and PIN-protected")
		pub, err := a.GenerateKey(p.pin, device.SlotSignature, o.Algorithm, o.Touch)
		if err != nil {
			return fmt.Errorf("generate key: %w", err)
		}
		step(fmt.Sprintf("%s key generated in slot 9c (PIN always, touch %s)", AlgorithmName(o.Algorithm), TouchName(o.Touch)))
		if o.Algorithm == device.AlgorithmEd25519 {
			fmt.Fprintln(o.Out, "  note: OpenSSL 3 (PHP's openssl_cms_verify), pdfsig and many PDF readers cannot check Ed25519 signatures;\n"+
				"        the central side and every verifier of these letters must (docs/ENROLMENT.md, \"Key type\").")
		}
		if res.keyHash, err = keyHash(pub); err != nil {
			return err
		}
		if o.Touch != device.TouchNever {
			fmt.Fprintln(o.Out, "Touch the token to sign the certificate request.")
		}
		signer, err := a.Signer(device.SlotSignature, p.pin)
		if err != nil {
			return fmt.Errorf("sign the certificate request: %w", err)
		}
		der, err := certificateRequest(o.Holder, signer)
		if err != nil {
			return err
		}
		res.csr = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		step("certificate request signed by the new key")
		leaf, inter, err := a.Attestation(device.SlotSignature)
		if err != nil {
			return fmt.Errorf("attestation: %w", err)
		}
		if err := checkAttestation(leaf, inter, pub, serial, o.Touch); err != nil {
			return err
		}
		res.attestation = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}),
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw})...)
		step("attestation read")
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("enrol token %d: %w", serial, err)
	}
	return &res, nil
}

// checkAttestation checks that the token attests the key it just made,
// with the policies asked for. The intermediate is taken as the anchor
// here: only the CA can check it against Yubico's root.
func checkAttestation(leaf, inter *x509.Certificate, pub crypto.PublicKey, serial uint32, touch device.TouchPolicy) error {
	roots := x509.NewCertPool()
	roots.AddCert(inter)
	att, err := device.VerifyAttestation(leaf, inter, roots)
	if err != nil {
		return err
	}
	eq, ok := att.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	switch {
	case !ok || !eq.Equal(pub):
		return errors.New("attestation: the token attests another key than the one it made")
	case att.Serial != serial:
		return fmt.Errorf("attestation: serial %d, token %d", att.Serial, serial)
	case att.PINPolicy != device.PINPolicyAlways:
		return errors.New("attestation: the key's PIN policy is not 'always'")
	case att.TouchPolicy != touch:
		return fmt.Errorf("attestation: the key's touch policy is not %q", TouchName(touch))
	}
	return nil
}

func keyHash(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// checkOutDir says clearly when the output directory is missing: enrol
// creates none, so that a mistyped path is not quietly made.
func checkOutDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("directory %s does not exist (enrol creates no directories)", dir)
	case err != nil:
		return fmt.Errorf("output directory: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// writeNewFile writes a public file that must not exist yet (O_EXCL: no
// overwrite, no link followed), removing it again when writing fails.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists: enrol never overwrites a file", path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
