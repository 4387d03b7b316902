package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tekenid/teken/internal/ctl"
	"github.com/tekenid/teken/queue"
)

func init() {
	commands["audit"] = command{"export or verify a tekend database's audit log", runAudit}
}

const auditHelp = `Usage: tekenctl audit export|verify --db FILE [--timeout D]

Reads a tekend database read-only. 'export' writes the audit log to stdout
as JSON Lines; 'verify' walks its hash chain and names the first broken
link (exit 1). A database that a running tekend holds cannot be opened:
take a consistent copy with 'tekend backup' first (a plain cp of a live
database may catch it half-written), or stop tekend.

Examples:
  tekend backup /tmp/tekend-copy.db
  tekenctl audit verify --db /tmp/tekend-copy.db
  tekenctl audit export --db /tmp/tekend-copy.db > audit.jsonl
`

// auditActions are what 'tekenctl audit' does; one comes first.
var auditActions = []string{"export", "verify"}

func runAudit(ctx context.Context, e env, args []string) int {
	verb, name := "", "audit"
	if len(args) > 0 && (args[0] == "export" || args[0] == "verify") {
		verb, name, args = args[0], "audit "+args[0], args[1:]
	}
	fs := flags(e, name, auditHelp)
	db := fs.String("db", "", "the tekend database `FILE`")
	timeout := durationFlag(fs, "timeout", 2*time.Second, "wait at most `DURATION` for the file's lock")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	switch {
	case verb == "" && fs.NArg() > 0:
		msg := fmt.Sprintf("unknown action %q: want export or verify first", fs.Arg(0))
		if s := suggest(fs.Arg(0), auditActions); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return usageErr(e, "audit", "%s", msg)
	case verb == "":
		return usageErr(e, "audit", "want export or verify first")
	case *db == "":
		return usageErr(e, name, "no --db FILE")
	case fs.NArg() > 0:
		return usageErr(e, name, "unexpected argument %q", fs.Arg(0))
	}
	if verb == "export" {
		if _, err := ctl.AuditExport(ctx, *db, *timeout, e.stdout); err != nil {
			return fail(e, name, err)
		}
		return exitOK
	}
	n, err := ctl.AuditVerify(ctx, *db, *timeout)
	var chain *queue.ChainError
	if errors.As(err, &chain) {
		fmt.Fprintf(e.stdout, "BROKEN at entry %d: %s (%d entries before it are intact)\n", chain.Seq, chain.Reason, n)
		return exitFailure
	}
	if err != nil {
		return fail(e, name, err)
	}
	fmt.Fprintf(e.stdout, "OK: %d entries, hash chain intact\n", n)
	return exitOK
}
