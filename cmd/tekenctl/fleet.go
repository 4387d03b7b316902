package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tekenid/teken/internal/ctl"
)

func init() {
	commands["fleet"] = command{"show every terminal's status", runFleet}
}

const fleetHelp = `Usage: tekenctl fleet [--json] [--watch N] [flags]

Reads the status every terminal keeps on the broker (retained) and shows
each: online or offline and since when, software version, whether a token
is present, jobs waiting, results not yet delivered and the last error. It
only reads: it never takes results. --watch redraws every N seconds.

Examples:
  tekenctl fleet
  tekenctl fleet --watch 5
  tekenctl fleet --json | jq '.[] | select(.state=="offline") | .terminal'
` + envHelp

func runFleet(ctx context.Context, e env, args []string) int {
	fs := flags(e, "fleet", fleetHelp)
	sf := addSettingsFlags(fs, false)
	asJSON := fs.Bool("json", false, "print the fleet as JSON")
	watch := fs.Int("watch", 0, "redraw every `N` seconds until Ctrl-C")
	quiet := fs.Duration("quiet", 500*time.Millisecond, "the retained statuses are in after `DURATION` without one")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 || *watch < 0 || *quiet <= 0 {
		return usageErr(e, "fleet", "want no arguments, --watch N >= 0 and a positive --quiet")
	}
	st, err := sf.load(e)
	if err != nil {
		return fail(e, "fleet", err)
	}
	p := ctl.StartProgress(e.stderr, isTerminal(e.stderr), "reading the fleet's status")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	f, err := ctl.OpenFleet(cctx, st)
	if err != nil {
		cancel()
		p.Stop()
		return fail(e, "fleet", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = f.Close(cctx)
	}()
	err = f.Settle(cctx, *quiet)
	cancel()
	p.Stop()
	if err != nil {
		return fail(e, "fleet", err)
	}
	draw := func() error {
		fleet, invalid := f.Snapshot()
		if *asJSON {
			return ctl.WriteFleetJSON(e.stdout, fleet)
		}
		if *watch > 0 && isTerminal(e.stdout) {
			fmt.Fprint(e.stdout, "\033[H\033[2J") // home and clear: a redraw, not a scroll
		}
		if err := ctl.WriteFleetTable(e.stdout, fleet, time.Now()); err != nil {
			return err
		}
		if invalid > 0 {
			fmt.Fprintf(e.stderr, "%d invalid status messages dropped\n", invalid)
		}
		return nil
	}
	if err := draw(); err != nil {
		return fail(e, "fleet", err)
	}
	if *watch == 0 {
		return exitOK
	}
	tick := time.NewTicker(time.Duration(*watch) * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return exitOK
		case <-tick.C:
			if err := draw(); err != nil {
				return fail(e, "fleet", err)
			}
		}
	}
}
