package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/admin"
	"github.com/tekenid/teken/internal/doctor"
)

func init() {
	commands["doctor"] = command{"check this terminal: configuration, token, broker, clock, store, tekend", runDoctor}
}

const doctorHelp = `Usage: tekenctl doctor [--config FILE] [--user NAME] [--timeout DURATION] [--socket PATH]

Checks the terminal it runs on, from tekend's own configuration, and
prints one line per finding:

  ok|warn|fail  <what>: <detail> — <what to do>

configuration  tekend check-config --strict: every file it names loads,
               no placeholder of the sample is left
files          tekend's user (--user) reads every file named; no one else
               may change one, or read a secret (key, password, web config)
data_dir       0700 and owned by tekend's user, as the package makes it;
               the store file 0600
disk           room for the store to grow to store.max_size_bytes
pcscd          answers; the readers it sees
token          for each token present: its signing certificate as tekend
               judges it (validity, key usage, chain to signer_ca_files)
               and the PIN tries left; no PIN is asked or tried
broker         each URL, connected with the terminal's TLS trust, client
               certificate, user and password, but under a client id of
               its own (tekend's with "` + doctor.ClientIDSuffix + `" appended) in a clean
               session: tekend's session is never taken over, and the
               broker keeps nothing of the doctor's
clock          against the TSA's (the Date of its HTTP answer) when
               signing.tsa_url is set, else whether NTP keeps it
store          audit chain and counts: read-only when tekend is stopped,
               a hot backup over its admin socket (--socket) while it runs
tekend         runs and is ready (/readyz on metrics.listen)

Run it as root to check every file. Exit 0 when nothing failed (warnings
alone: 0), 1 otherwise.

Examples:
  sudo tekenctl doctor
  sudo tekenctl doctor --config /etc/teken/tekend.toml --timeout 5s
  sudo tekenctl doctor | grep -v '^ok'
`

func runDoctor(ctx context.Context, e env, args []string) int {
	fs := flags(e, "doctor", doctorHelp)
	config := fs.String("config", daemon.DefaultConfigPath, "tekend's configuration `FILE`")
	user := fs.String("user", doctor.DefaultServiceUser, "the `USER` tekend runs as")
	timeout := durationFlag(fs, "timeout", 10*time.Second, "wait at most `DURATION` for each of pcscd, a broker, the TSA and tekend")
	socket := fs.String("socket", admin.DefaultSocket, "tekend's admin socket `PATH`, for a hot backup of the store")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	switch {
	case fs.NArg() > 0:
		return usageErr(e, "doctor", "unexpected argument %q", fs.Arg(0))
	case *timeout <= 0:
		return usageErr(e, "doctor", "--timeout must be positive")
	}
	failed := doctor.Run(ctx, doctor.Options{
		ConfigPath: *config, ServiceUser: *user, Timeout: *timeout, AdminSocket: *socket, Logger: e.log,
		Report: func(f doctor.Finding) { fmt.Fprintln(e.stdout, f) },
	})
	if failed {
		return exitFailure
	}
	return exitOK
}
