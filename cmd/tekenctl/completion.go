package main

import (
	"context"
	"fmt"

	"github.com/tekenid/teken/internal/ctl"
)

func init() {
	commands["completion"] = command{"print the bash completion script", runCompletion}
}

const completionHelp = `Usage: tekenctl completion bash

Prints the bash completion script (also installed as
/usr/share/bash-completion/completions/tekenctl by the package).

Examples:
  source <(tekenctl completion bash)
  tekenctl completion bash > ~/.local/share/bash-completion/completions/tekenctl
`

func runCompletion(_ context.Context, e env, args []string) int {
	fs := flags(e, "completion", completionHelp)
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 || fs.Arg(0) != "bash" {
		return usageErr(e, "completion", "only 'bash' is supported")
	}
	fmt.Fprint(e.stdout, ctl.BashCompletion)
	return exitOK
}
