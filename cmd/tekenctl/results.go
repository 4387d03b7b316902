package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/ctl"
)

// splitIDs splits a comma-separated list, dropping empty items.
func splitIDs(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func init() {
	commands["results"] = command{"print (and save) results as they arrive", runResults}
}

const resultsHelp = `Usage: tekenctl results [--follow] [--json] [--out DIR] [flags]

Prints the results terminals send — a table, or JSON Lines with --json —
and acknowledges each once it is printed (and, with --out, written: each
signature as JOBID-DOCID.p7s for CMS, the signed PDF as JOBID-DOCID.pdf
for pades, .sig for raw, and JOBID.json last). Duplicates are dropped. A
file of the same name with other contents is never replaced unless
--overwrite says so: without it, that result is left unacknowledged and
comes again. Without --follow it prints what arrives within --timeout and
exits. The broker keeps the session under --client-id, so
results sent while tekenctl is not running wait for the next run. With
--resync, each terminal named is asked (a signed SyncRequest) to send
again every result it still holds without an acknowledgement: what a
central side that lost its session or its data does to get them back.

Examples:
  tekenctl results --follow
  tekenctl results --follow --json --out ./signed | jq .outcome
  tekenctl results --timeout 30s --out ./signed && tekenctl verify --ca ca-bundle.pem ./signed/*.pdf
  tekenctl results --resync kendari-setda-01,kendari-setda-02 --timeout 1m --out ./recovered
` + envHelp

func runResults(ctx context.Context, e env, args []string) int {
	fs := flags(e, "results", resultsHelp)
	sf := addSettingsFlags(fs, true)
	follow := fs.Bool("follow", false, "keep printing until Ctrl-C")
	asJSON := fs.Bool("json", false, "print JSON Lines, one result per line")
	outDir := fs.String("out", "", "write signatures, signed PDFs and result JSON to `DIR`")
	overwrite := fs.Bool("overwrite", false, "with --out, replace a file of the same name and other contents")
	timeout := fs.Duration("timeout", 5*time.Second, "without --follow, print what arrives within `DURATION`")
	clientID := fs.String("client-id", ctl.DefaultResultsClientID, "stable MQTT client `ID` the broker keeps the session under")
	resync := fs.String("resync", "", "ask terminals `IDs` (comma-separated) to send again every unacknowledged result")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageErr(e, "results", "unexpected argument %q", fs.Arg(0))
	}
	if *timeout <= 0 {
		return usageErr(e, "results", "--timeout must be positive")
	}
	for _, id := range splitIDs(*resync) {
		if err := api.ValidTerminalID(id); err != nil {
			return usageErr(e, "results", "--resync: %v", err)
		}
	}
	st, err := sf.load(e)
	if err != nil {
		return fail(e, "results", err)
	}
	p := ctl.StartProgress(e.stderr, isTerminal(e.stderr), "connecting to the broker")
	n, err := ctl.Results(ctx, ctl.ResultsOptions{Settings: st, ClientID: *clientID, Follow: *follow,
		Timeout: *timeout, OutDir: *outDir, Overwrite: *overwrite, JSON: *asJSON, Connected: p.Stop, Resync: splitIDs(*resync), Log: e.stderr}, e.stdout)
	p.Stop()
	if err != nil {
		return fail(e, "results", err)
	}
	if !*asJSON && n == 0 {
		fmt.Fprintln(e.stderr, "no results")
	}
	return exitOK
}
