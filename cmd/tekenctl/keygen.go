package main

import (
	"context"
	"fmt"

	"github.com/tekenid/teken/internal/ctl"
)

func init() {
	commands["keygen"] = command{"make a dispatcher key pair and print its kid", runKeygen}
}

const keygenHelp = `Usage: tekenctl keygen [--alg ES256|Ed25519] --out PREFIX

Makes the key pair the central system signs jobs with: PREFIX.key (PKCS#8
PEM, mode 0600, keep it secret) and PREFIX.pub (PKIX PEM, list it in every
terminal's [dispatcher] key_files). Prints the key's kid, the RFC 7638
thumbprint terminals log with every job. Never overwrites a key.

Examples:
  tekenctl keygen --out /etc/teken/dispatcher
  tekenctl keygen --alg Ed25519 --out ./central-2027
`

func runKeygen(_ context.Context, e env, args []string) int {
	fs := flags(e, "keygen", keygenHelp)
	alg := fs.String("alg", "ES256", "key `ALGORITHM`: ES256 or Ed25519")
	out := fs.String("out", "", "write `PREFIX`.key and PREFIX.pub")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	if *out == "" || fs.NArg() > 0 {
		return usageErr(e, "keygen", "want --out PREFIX and no arguments")
	}
	kp, err := ctl.Keygen(*alg, *out)
	if err != nil {
		return fail(e, "keygen", err)
	}
	fmt.Fprintln(e.stdout, kp.KID)
	fmt.Fprintf(e.stderr, "wrote %s (private, %s) and %s (public)\n", kp.KeyFile, kp.Algorithm, kp.PubFile)
	return exitOK
}
