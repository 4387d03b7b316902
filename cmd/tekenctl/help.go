package main

import (
	"context"
	"fmt"

	"github.com/tekenid/teken/internal/version"
)

func init() {
	commands["help"] = command{"list the commands, or show one's flags and examples", runHelp}
	commands["version"] = command{"print the version (also: tekenctl --version)", runVersion}
}

const helpHelp = `Usage: tekenctl help [COMMAND]

Without a command, lists the commands. With one, prints its help: what it
does, its flags and examples, as 'tekenctl COMMAND --help' does.

Examples:
  tekenctl help
  tekenctl help dispatch
`

func runHelp(ctx context.Context, e env, args []string) int {
	fs := flags(e, "help", helpHelp)
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	switch fs.NArg() {
	case 0:
		fmt.Fprint(e.stdout, usage())
		return exitOK
	case 1:
	default:
		return usageErr(e, "help", "want one command, got %d", fs.NArg())
	}
	cmd, ok := commands[fs.Arg(0)]
	if !ok {
		return unknownCommand(e, "help", fs.Arg(0))
	}
	return cmd.run(ctx, e, []string{"--help"})
}

const versionHelp = `Usage: tekenctl version

Prints tekenctl's version, as 'tekenctl --version' does.

Examples:
  tekenctl version
`

func runVersion(_ context.Context, e env, args []string) int {
	fs := flags(e, "version", versionHelp)
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageErr(e, "version", "unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprintln(e.stdout, "tekenctl", version.String())
	return exitOK
}
