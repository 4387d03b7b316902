package ctl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tekenid/teken/device"
)

// ErrKeyType says a key type or touch policy is not one enrol offers.
var ErrKeyType = errors.New("unknown value")

// keyTypes and touchPolicies are the names the flags take.
var (
	keyTypes = []struct {
		name string
		alg  device.KeyAlgorithm
		desc string
	}{
		{"p256", device.AlgorithmP256, "P-256"},
		{"p384", device.AlgorithmP384, "P-384"},
		{"rsa2048", device.AlgorithmRSA2048, "RSA 2048"},
		{"ed25519", device.AlgorithmEd25519, "Ed25519"},
	}
	touchPolicies = []struct {
		name  string
		touch device.TouchPolicy
	}{{"never", device.TouchNever}, {"always", device.TouchAlways}, {"cached", device.TouchCached}}
)

// ParseKeyType maps p256, p384, rsa2048 or ed25519 to the algorithm.
// Whether the token can make an Ed25519 key (firmware 5.7) is the device
// package's to say.
func ParseKeyType(s string) (device.KeyAlgorithm, error) {
	for _, k := range keyTypes {
		if strings.EqualFold(s, k.name) {
			return k.alg, nil
		}
	}
	return 0, fmt.Errorf("%w %q: want p256, p384, rsa2048 or ed25519", ErrKeyType, s)
}

// ParseTouch maps never, always or cached to the touch policy.
func ParseTouch(s string) (device.TouchPolicy, error) {
	for _, p := range touchPolicies {
		if strings.EqualFold(s, p.name) {
			return p.touch, nil
		}
	}
	return 0, fmt.Errorf("%w %q: want never, always or cached", ErrKeyType, s)
}

// AlgorithmName names a key algorithm for people.
func AlgorithmName(a device.KeyAlgorithm) string {
	for _, k := range keyTypes {
		if k.alg == a {
			return k.desc
		}
	}
	return fmt.Sprintf("algorithm %d", int(a))
}

// TouchName names a touch policy as the flag does.
func TouchName(p device.TouchPolicy) string {
	for _, t := range touchPolicies {
		if t.touch == p {
			return t.name
		}
	}
	return fmt.Sprintf("touch %d", int(p))
}

// TokenInfo reads the token in reader ("" for the only one present) and
// shows it on out. It needs no PIN and changes nothing.
func TokenInfo(ctx context.Context, toks *device.Tokens, reader string, out io.Writer) error {
	reader, err := pickReader(ctx, toks, reader)
	if err != nil {
		return err
	}
	info, err := toks.Info(ctx, reader)
	if err != nil {
		return err
	}
	ShowToken(out, reader, info)
	return nil
}

// ShowToken prints what IT checks before enrolling a token.
func ShowToken(out io.Writer, reader string, info device.Info) {
	tries := func(n int) string {
		if n < 0 {
			return "unknown"
		}
		return fmt.Sprint(n)
	}
	ff := info.FormFactor
	if ff == "" {
		ff = "unknown"
	}
	fmt.Fprintf(out, "Token in %s\n", reader)
	fmt.Fprintf(out, "  serial:          %d\n", info.Serial)
	fmt.Fprintf(out, "  firmware:        %s\n", info.Version)
	fmt.Fprintf(out, "  form factor:     %s\n", ff)
	fmt.Fprintf(out, "  PIN tries left:  %s\n", tries(info.PINRetries))
	fmt.Fprintf(out, "  PUK tries left:  %s\n", tries(info.PUKRetries))
	d := info.Defaults
	state := func(isDefault bool) string {
		switch {
		case !d.Known:
			return "unknown (firmware before 5.3 cannot say)"
		case isDefault:
			return "factory default: enrol changes it"
		}
		return "changed"
	}
	fmt.Fprintf(out, "  PIN:             %s\n", state(d.PIN))
	fmt.Fprintf(out, "  PUK:             %s\n", state(d.PUK))
	fmt.Fprintf(out, "  management key:  %s\n", state(d.ManagementKey))
	if c := info.SignCert; c != nil {
		sum := sha256.Sum256(c.Raw)
		fmt.Fprintf(out, "  slot 9c:         %s, serialNumber %s, valid %s to %s\n", c.Subject.CommonName, c.Subject.SerialNumber,
			c.NotBefore.Format("2006-01-02"), c.NotAfter.Format("2006-01-02"))
		fmt.Fprintf(out, "  cert SHA-256:    %s\n", hex.EncodeToString(sum[:]))
	} else {
		fmt.Fprintf(out, "  slot 9c:         no certificate\n")
	}
}
