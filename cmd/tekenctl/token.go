package main

import (
	"context"
	"fmt"

	"github.com/tekenid/teken/device/pivsim"
	"github.com/tekenid/teken/internal/ctl"
)

func init() {
	commands["token"] = command{"enrol a PIV token, import its certificate, show it, or run a software one (token enrol|import-cert|info|sim)", runToken}
}

const tokenHelp = `Usage: tekenctl token sim --state DIR [--name NAME --nip NIP] [--reader-addr HOST:PORT | --pcscd]

Runs a software PIV token. On the first run it makes one in DIR for the
official named by --name and --nip, with a demo CA; later runs load it.
Prints the reader, serial, certificate SHA-256 and the files (give the
certificate to 'tekenctl dispatch --signer', the CA to tekend's
signer_ca_files), then inserts the token into the vpcd reader (the system
vpcd listens on 127.0.0.1:35963). Enter removes it, Enter again taps it;
Ctrl-C stops. --pcscd starts a private pcscd instead (root only).

The other actions, for real tokens: 'tekenctl token enrol --help',
'tekenctl token import-cert --help', 'tekenctl token info --help'.

Examples:
  tekenctl token sim --state ~/teken-token --name "Siti Rahmawati" --nip 198703152010012003
  tekenctl token sim --state ~/teken-token --reader-addr 127.0.0.1:35964
  sudo tekenctl token sim --state /tmp/token --pcscd --name "Budi" --nip 197501012000031001
`

// tokenActions are what 'tekenctl token' does; one comes first.
var tokenActions = []string{"enrol", "import-cert", "info", "sim"}

func runToken(ctx context.Context, e env, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "enrol":
			return runTokenEnrol(ctx, e, args[1:])
		case "import-cert":
			return runTokenImportCert(ctx, e, args[1:])
		case "info":
			return runTokenInfo(ctx, e, args[1:])
		}
	}
	sim, name := false, "token"
	if len(args) > 0 && args[0] == "sim" {
		sim, name, args = true, "token sim", args[1:]
	}
	fs := flags(e, name, tokenHelp)
	state := fs.String("state", "", "keep the token in `DIR`")
	official := fs.String("name", "", "the official's `NAME` (certificate CN), for a new token")
	nip := fs.String("nip", "", "the official's `NIP` (certificate serialNumber), for a new token")
	addr := fs.String("reader-addr", ctl.DefaultVPCDAddr, "the vpcd reader's `HOST:PORT`")
	private := fs.Bool("pcscd", false, "start a private pcscd with vpcd readers (root only)")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	switch {
	case !sim && fs.NArg() > 0:
		msg := fmt.Sprintf("unknown action %q: want enrol, import-cert, info or sim first", fs.Arg(0))
		if s := suggest(fs.Arg(0), tokenActions); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return usageErr(e, "token", "%s", msg)
	case !sim:
		return usageErr(e, "token", "want enrol, import-cert, info or sim first")
	case *state == "":
		return usageErr(e, name, "no --state DIR")
	case fs.NArg() > 0:
		return usageErr(e, name, "unexpected argument %q", fs.Arg(0))
	}
	err := ctl.RunToken(ctx, ctl.TokenOptions{State: *state, Official: pivsim.Official{Name: *official, NIP: *nip},
		ReaderAddr: *addr, PCSCD: *private, In: e.stdin, Out: e.stdout})
	if err != nil {
		return fail(e, name, err)
	}
	return exitOK
}
