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
	"os"
	"os/signal"
	"syscall"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/internal/version"
)

const usage = `Usage: tekend [flags] [command]

Commands:
  run            run the daemon (default)
  check-config   validate the configuration and print the effective values

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
		cfg, err := daemon.LoadConfig(*configPath)
		if err != nil {
			fmt.Fprintln(stderr, "tekend:", err)
			return 1
		}
		if err := cfg.WriteTOML(stdout); err != nil {
			fmt.Fprintln(stderr, "tekend:", err)
			return 1
		}
		return 0
	case "", "run":
		cfg, err := daemon.LoadConfig(*configPath)
		if err != nil {
			fmt.Fprintln(stderr, "tekend:", err)
			return 1
		}
		level, _ := daemon.ParseLogLevel(cfg.LogLevel) // validated by LoadConfig
		log := daemon.NewLogger(level, stderr)
		if err := daemon.Run(ctx, cfg, daemon.Options{Logger: log}); err != nil {
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
