package main

import (
	"context"
	"time"

	"github.com/tekenid/teken/internal/ctl"
)

func init() {
	commands["route"] = command{ctl.RouteSummary, runRoute}
}

func runRoute(_ context.Context, e env, args []string) int {
	fs := flags(e, "route", ctl.RouteHelp)
	ledger := fs.String("ledger", "", "the router's ledger `FILE`")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	pdf := fs.String("pdf", "", "write the route's latest PDF to `FILE`")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	switch {
	case *ledger == "":
		return usageErr(e, "route", "no --ledger FILE")
	case fs.NArg() > 1:
		return usageErr(e, "route", "unexpected argument %q", fs.Arg(1))
	case *pdf != "" && fs.NArg() == 0:
		return usageErr(e, "route", "--pdf needs a ROUTE")
	}
	if err := ctl.ShowRoutes(*ledger, fs.Arg(0), ctl.RouteOutput{JSON: *asJSON, PDF: *pdf}, e.stdout, time.Now()); err != nil {
		return fail(e, "route", err)
	}
	return exitOK
}
