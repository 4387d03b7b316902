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
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit codes, the same for every command.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed, or a verification failed
	exitUsage   = 2 // bad flags or arguments
)

// env is what every command gets: its streams, the process environment,
// the --verbose switch and the logger that obeys it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	verbose        *verbosity
	log            *slog.Logger
}

// withLog gives e a --verbose switch and a logger on its stderr, unless it
// has them already.
func (e env) withLog() env {
	if e.verbose == nil {
		e.verbose = new(verbosity)
	}
	if e.log == nil {
		e.log = newLogger(e.stderr, e.verbose)
	}
	return e
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
	e := env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}.withLog()
	// Code that logs to the default logger obeys --verbose as well.
	slog.SetDefault(e.log)
	code := run(ctx, e, os.Args[1:])
	stop() // os.Exit runs no deferred calls
	os.Exit(code)
}

func usage() string {
	var b strings.Builder
	b.WriteString("Usage: tekenctl [--verbose] <command> [flags]\n\nCommands:\n")
	for _, n := range commandNames() {
		fmt.Fprintf(&b, "  %-12s %s\n", n, commands[n].summary)
	}
	b.WriteString(`
Every command also takes -v or --verbose (before or after its name), which
logs the broker connection to stderr; without it tekenctl prints only its
output, its notes and errors.

Durations are written 90s, 90m, 36h, 7d or 1d12h (units ns, us, ms, s, m,
h and d, a day being 24 hours).

Run 'tekenctl help <command>' or 'tekenctl <command> --help' for a
command's flags and examples.
Exit codes: 0 success, 1 failure (or an invalid signature), 2 usage error.
`)
	return b.String()
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func run(ctx context.Context, e env, args []string) int {
	e = e.withLog()
	fs := flag.NewFlagSet("tekenctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed below, in one line
	showVersion := fs.Bool("version", false, "print the version and exit")
	addVerbose(fs, e.verbose)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, usage())
			return exitOK
		}
		return usageErr(e, "", "%s", flagError(fs, err))
	}
	if *showVersion {
		return runVersion(ctx, e, nil)
	}
	if fs.NArg() == 0 {
		fmt.Fprint(e.stderr, usage())
		return exitUsage
	}
	cmd, ok := commands[fs.Arg(0)]
	if !ok {
		return unknownCommand(e, "", fs.Arg(0))
	}
	return cmd.run(ctx, e, fs.Args()[1:])
}

// unknownCommand reports a command name that is not one, with the closest
// that is; in is "" at the top level, or "help".
func unknownCommand(e env, in, name string) int {
	prog := strings.TrimSpace("tekenctl " + in)
	msg := fmt.Sprintf("%s: unknown command %q", prog, name)
	if s := suggest(name, commandNames()); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	fmt.Fprintln(e.stderr, msg)
	fmt.Fprintln(e.stderr, "Run 'tekenctl help' for the list of commands.")
	return exitUsage
}

// flags makes a subcommand's flag set whose --help prints the usage text
// (with examples) and the flags to stdout. Every command takes --verbose.
func flags(e env, name, text string) *flag.FlagSet {
	fs := flag.NewFlagSet("tekenctl "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	if e.verbose == nil {
		e.verbose = new(verbosity) // an env that did not come through run
	}
	addVerbose(fs, e.verbose)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), text)
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a subcommand's flags; ok is false with the exit code to
// use. --help prints the whole help to stdout; a mistake prints one line
// and a hint to stderr.
func parse(e env, fs *flag.FlagSet, args []string) (code int, ok bool) {
	acceptDays(fs)
	// The flag package prints the error and the whole usage itself;
	// silence it and print what is meant, where it is meant.
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	if err == nil {
		fs.SetOutput(e.stderr)
		return 0, true
	}
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(e.stdout)
		usage()
		return exitOK, false
	}
	fs.SetOutput(e.stderr)
	return usageErr(e, strings.TrimPrefix(fs.Name(), "tekenctl "), "%s", flagError(fs, err)), false
}

// usageErr prints what is wrong in one line and where the usage is in
// another, and returns the usage exit code; name is the command ("" at
// the top level).
func usageErr(e env, name, format string, args ...any) int {
	prog := strings.TrimSpace("tekenctl " + name)
	fmt.Fprintf(e.stderr, "%s: %s\n", prog, fmt.Sprintf(format, args...))
	fmt.Fprintf(e.stderr, "Run '%s --help' for usage.\n", prog)
	return exitUsage
}

// fail prints one clear line and returns the failure exit code.
func fail(e env, name string, err error) int {
	fmt.Fprintf(e.stderr, "tekenctl %s: %v\n", name, err)
	return exitFailure
}
