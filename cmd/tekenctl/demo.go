package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/tekenid/teken/internal/demo"
)

func init() {
	commands["demo"] = command{"run a whole terminal on this machine (make demo)", runDemo}
}

const demoHelp = `Usage: tekenctl demo [--tekend PATH] [--dir DIR]

Runs a complete signing terminal on this machine: a private Mosquitto and
pcscd, a software token for a sample official, tekend, and a central side
that dispatches three sample letters (one to come back as a signed PDF with
a visible block) and prints each result as it arrives. Every result is
checked against the document of its own job, whoever dispatched it: the
demo, or the 'tekenctl dispatch' commands it prints. Signed results are
saved under the demo's directory. Press Enter to tap the token, Enter again
to remove it. Ctrl-C stops it all. Needs root (pcscd runs in a private
mount namespace).

Examples:
  sudo tekenctl demo
  sudo tekenctl demo --dir /tmp/teken-demo     # keep the state between runs
`

func runDemo(ctx context.Context, e env, args []string) int {
	fs := flags(e, "demo", demoHelp)
	exe, _ := os.Executable()
	tekend := fs.String("tekend", filepath.Join(filepath.Dir(exe), "tekend"), "the tekend `binary` to run")
	dir := fs.String("dir", "", "keep the demo's state in `DIR` (default: a temporary directory)")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	if err := demo.Run(ctx, demo.Options{Tekend: *tekend, Dir: *dir, Out: e.stdout, In: e.stdin}); err != nil {
		return fail(e, "demo", err)
	}
	return exitOK
}
