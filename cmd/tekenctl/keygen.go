package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/tekenid/teken/internal/ctl"
)

func init() {
	commands["keygen"] = command{"make a dispatcher key pair and print its kid", runKeygen}
}

const keygenHelp = `Usage: tekenctl keygen [--alg ES256|Ed25519] --out PREFIX

Makes the key pair the central system signs jobs with, on the central side:
PREFIX.key, the private key (PKCS#8 PEM, mode 0600), which signs jobs and
never leaves the central side, and PREFIX.pub, the public key (PKIX PEM),
which every terminal gets as /etc/teken/dispatcher.pub (its [dispatcher]
key_files). A terminal holds only public keys: never put a .key file on one.
Prints the key's kid, the RFC 7638 thumbprint terminals log with every job.

PREFIX may end in .key. The directory must exist: keygen creates none, and
it never overwrites a file.

Examples:
  tekenctl keygen --out ./dispatcher
  scp ./dispatcher.pub root@kendari-setda-01:/etc/teken/dispatcher.pub
  install -d -m 0700 /etc/teken-central
  tekenctl keygen --alg Ed25519 --out /etc/teken-central/dispatcher-2027.key
`

func runKeygen(_ context.Context, e env, args []string) int {
	fs := flags(e, "keygen", keygenHelp)
	alg := fs.String("alg", "ES256", "key `ALGORITHM`: ES256 or Ed25519")
	out := fs.String("out", "", "write the private key to `PREFIX`.key and the public key to PREFIX.pub")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	switch {
	case *out == "":
		return usageErr(e, "keygen", "no --out PREFIX")
	case fs.NArg() > 0:
		return usageErr(e, "keygen", "unexpected argument %q", fs.Arg(0))
	}
	kp, err := ctl.Keygen(*alg, *out)
	if errors.Is(err, ctl.ErrAlgorithm) {
		return usageErr(e, "keygen", "--alg: %v", err)
	}
	if err != nil {
		return fail(e, "keygen", err)
	}
	fmt.Fprintln(e.stdout, kp.KID)
	fmt.Fprintf(e.stderr, "wrote %s (private, %s: keep it on the central side) and %s (public, for the terminals)\n", kp.KeyFile, kp.Algorithm, kp.PubFile)
	return exitOK
}
