package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/ctl"
)

func init() {
	commands["fleet"] = command{"show every terminal's status", runFleet}
}

const fleetHelp = `Usage: tekenctl fleet [--json] [--watch INTERVAL] [flags]

Reads the status every terminal keeps on the broker (retained) and shows
each: online or offline and since when, software version, whether a token
is present, jobs waiting, results not yet delivered and the last error. It
only reads: it never takes results. --watch redraws it every INTERVAL
(5 is five seconds; 30s and 1m read as durations do).

A broker that gives no retained message to a wildcard subscription
(RabbitMQ 3.10) shows a terminal only when it publishes its status again
(once a minute, tekend's status.heartbeat): name the terminals with
--terminals, or listen for a heartbeat with --listen 65s.

Examples:
  tekenctl fleet
  tekenctl fleet --watch 5
  tekenctl fleet --terminals kendari-setda-01,baubau-setda-01
  tekenctl fleet --listen 65s
  tekenctl fleet --json | jq '.[] | select(.state=="offline") | .terminal'
` + envHelp

func runFleet(ctx context.Context, e env, args []string) int {
	fs := flags(e, "fleet", fleetHelp)
	sf := addSettingsFlags(fs, false)
	asJSON := fs.Bool("json", false, "print the fleet as JSON")
	var watch time.Duration
	fs.Var(&durationValue{d: &watch, bare: time.Second}, "watch", "redraw every `INTERVAL` (seconds, or a duration such as 1m) until Ctrl-C")
	quiet := durationFlag(fs, "quiet", 500*time.Millisecond, "the retained statuses are in after `DURATION` without one")
	terminals := fs.String("terminals", "", "also watch terminals `IDs` (comma-separated) by name")
	listen := durationFlag(fs, "listen", 0, "listen at least `DURATION` (a heartbeat comes once a minute)")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	switch {
	case fs.NArg() > 0:
		return usageErr(e, "fleet", "unexpected argument %q", fs.Arg(0))
	case watch != 0 && watch < time.Second:
		return usageErr(e, "fleet", "--watch %s: redraw at most once a second", formatDuration(watch))
	case *quiet <= 0:
		return usageErr(e, "fleet", "--quiet must be positive")
	}
	named := splitIDs(*terminals)
	for _, id := range named {
		if err := api.ValidTerminalID(id); err != nil {
			return usageErr(e, "fleet", "--terminals: %v", err)
		}
	}
	st, err := sf.load(e)
	if err != nil {
		return fail(e, "fleet", err)
	}
	p := ctl.StartProgress(e.stderr, isTerminal(e.stderr), "reading the fleet's status")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second+*listen)
	f, err := ctl.OpenFleet(cctx, st, named...)
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
	if err == nil && *listen > 0 {
		err = f.Listen(cctx, *listen)
	}
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
		if watch > 0 && isTerminal(e.stdout) {
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
	if watch == 0 {
		return exitOK
	}
	tick := time.NewTicker(watch)
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
