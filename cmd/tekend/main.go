// Command tekend is the signing-terminal daemon: it takes signing jobs over
// MQTT, shows them to the official on the kiosk page, signs with the
// official's PIV token and keeps everything durably until the central letter
// system has the results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/admin"
	"github.com/tekenid/teken/internal/version"
)

const usage = `Usage: tekend [flags] [command]

Commands:
  run            run the daemon (default)
  check-config   check the configuration and every file it names, print
                 the effective values; --strict: warnings fail too
  backup FILE    copy the running terminal's store to FILE, while it runs
                 (-force: replace FILE); see tekend backup -help

Signals to tekend run:
  SIGTERM        stop, giving a signing in flight the shutdown grace
  SIGHUP         reload the configuration (systemctl reload tekend): the
                 dispatcher keys, signer CAs, TSA and log level change;
                 the log names any other change as needing a restart

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tekend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/teken/tekend.toml", "configuration `file` (TOML)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	printUsage := func(w io.Writer) {
		fs.SetOutput(w)
		fmt.Fprint(w, usage)
		fs.PrintDefaults()
	}
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return 0
		}
		printUsage(stderr)
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "tekend", version.String())
		return 0
	}
	switch cmd := fs.Arg(0); cmd {
	case "check-config":
		return checkConfig(*configPath, fs.Args()[1:], stdout, stderr)
	case "backup":
		return backup(ctx, fs.Args()[1:], stdout, stderr)
	case "", "run":
		// Caught before anything else: a SIGHUP while tekend starts
		// must not end it (the default action), only be handled once
		// it runs.
		reload := make(chan os.Signal, 1)
		signal.Notify(reload, syscall.SIGHUP)
		defer signal.Stop(reload)
		cfg, err := daemon.LoadConfig(*configPath)
		if err != nil {
			fmt.Fprintln(stderr, "tekend:", err)
			return 1
		}
		// log_level was validated by LoadConfig; a reload sets level.
		var level slog.LevelVar
		l, _ := daemon.ParseLogLevel(cfg.LogLevel)
		level.Set(l)
		log := daemon.NewLogger(&level, stderr)
		opts := daemon.Options{Logger: log, LogLevel: &level, ConfigPath: *configPath, Reload: reload, AdminSocket: admin.DefaultSocket}
		if err := daemon.Run(ctx, cfg, opts); err != nil {
			log.Error("tekend failed", "err", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "tekend: unknown command %q\n", cmd)
		printUsage(stderr)
		return 2
	}
}

const checkConfigUsage = `Usage: tekend [-config FILE] check-config [--strict]

Reads the configuration and every file it names (dispatcher keys, CAs, the
broker's client certificate and key, the password file, the metrics web
config) with the code tekend run uses, so that whatever run would refuse is
refused here first, with the same message. Warns about values tekend runs
with but should not be given, such as the sample's terminal_id and example
broker host. Errors and warnings go to stderr, one line each, naming the
field; on success the effective configuration goes to stdout.
Exit 0: no error (and, with --strict, no warning); 1 otherwise.

Flags:
`

// checkConfig is tekend check-config: errors and warnings one line each on
// stderr, and the effective configuration on stdout when it passes.
func checkConfig(configPath string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tekend check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", configPath, "configuration `file` (TOML)")
	strict := fs.Bool("strict", false, "fail on warnings too (the package's postinst does)")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		w, code := stderr, 2
		if errors.Is(err, flag.ErrHelp) {
			w, code = stdout, 0
		}
		fs.SetOutput(w)
		fmt.Fprint(w, checkConfigUsage)
		fs.PrintDefaults()
		return code
	}
	check := daemon.CheckConfigFile(*path)
	oneLine := strings.NewReplacer("\r", " ", "\n", "; ")
	for _, err := range check.Errors {
		fmt.Fprintln(stderr, "tekend: error:", oneLine.Replace(err.Error()))
	}
	for _, w := range check.Warnings {
		fmt.Fprintln(stderr, "tekend: warning:", oneLine.Replace(w.Error()))
	}
	if check.Failed(*strict) {
		verdict := "tekend run would refuse it"
		if len(check.Errors) == 0 {
			verdict = "warnings fail with --strict"
		}
		fmt.Fprintf(stderr, "tekend: %s: %s, %s: %s\n", *path, count(len(check.Errors), "error"), count(len(check.Warnings), "warning"), verdict)
		return 1
	}
	if err := check.Config.WriteTOML(stdout); err != nil {
		fmt.Fprintln(stderr, "tekend:", err)
		return 1
	}
	return 0
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
