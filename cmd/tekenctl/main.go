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
	"sort"
	"strings"
	"syscall"

	"github.com/tekenid/teken/internal/version"
)

// Exit codes, the same for every command.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed, or a verification failed
	exitUsage   = 2 // bad flags or arguments
)

// env is what every command gets: its streams and the process environment.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// command is one tekenctl subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, e env, args []string) int
}

// commands are registered by the files that implement them.
var commands = map[string]command{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:]))
}

func usage() string {
	var b strings.Builder
	b.WriteString("Usage: tekenctl [--version] <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-12s %s\n", n, commands[n].summary)
	}
	b.WriteString("\nRun 'tekenctl <command> --help' for a command's flags and examples.\n")
	b.WriteString("Exit codes: 0 success, 1 failure (or an invalid signature), 2 usage error.\n")
	return b.String()
}

func run(ctx context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("tekenctl", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, usage())
			return exitOK
		}
		fmt.Fprint(e.stderr, usage())
		return exitUsage
	}
	if *showVersion || fs.Arg(0) == "version" {
		fmt.Fprintln(e.stdout, "tekenctl", version.String())
		return exitOK
	}
	if fs.NArg() == 0 {
		fmt.Fprint(e.stderr, usage())
		return exitUsage
	}
	cmd, ok := commands[fs.Arg(0)]
	if !ok {
		fmt.Fprintf(e.stderr, "tekenctl: unknown command %q\n\n%s", fs.Arg(0), usage())
		return exitUsage
	}
	return cmd.run(ctx, e, fs.Args()[1:])
}

// flags makes a subcommand's flag set whose --help prints the usage text
// (with examples) to stdout.
func flags(e env, name, text string) *flag.FlagSet {
	fs := flag.NewFlagSet("tekenctl "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), text)
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a subcommand's flags; ok is false with the exit code to use.
func parse(e env, fs *flag.FlagSet, args []string) (code int, ok bool) {
	// The flag package prints the usage itself on -help and on errors;
	// print it once, to stdout for -help and to stderr otherwise.
	usage := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = usage }()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(e.stdout)
			usage()
			return exitOK, false
		}
		usage()
		return exitUsage, false
	}
	return 0, true
}

// fail prints one clear line and returns the failure exit code.
func fail(e env, name string, err error) int {
	fmt.Fprintf(e.stderr, "tekenctl %s: %v\n", name, err)
	return exitFailure
}
