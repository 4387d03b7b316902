// Command tekenctl is the integrators' and operators' tool for Teken: it
// dispatches jobs, follows and verifies results, shows the fleet, reads the
// audit log and runs a software token for demos.
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

	"github.com/tekenid/teken/internal/version"
)

const usage = `Usage: tekenctl [--version] <command> [flags]

Commands:
  version   print the version

Run 'tekenctl <command> --help' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tekenctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprint(stderr, usage)
		return 2
	}
	if *showVersion || fs.Arg(0) == "version" {
		fmt.Fprintln(stdout, "tekenctl", version.String())
		return 0
	}
	_ = ctx
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fmt.Fprintf(stderr, "tekenctl: unknown command %q\n", fs.Arg(0))
	return 2
}
