package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/ctl"
)

func init() {
	commands["dispatch"] = command{"sign and publish a job for a terminal", runDispatch}
}

const dispatchHelp = `Usage: tekenctl dispatch --terminal T --signer CERT.pem [flags] FILE...

Signs a job with the dispatcher key and publishes it to terminal T, for the
official whose certificate is CERT.pem (the job names the certificate's
SHA-256; name and NIP come from its subject). Waits for the terminal's
receipt and prints the job id, or the reason it was refused. With --wait it
also waits for the official to act and exits 0 only if the job was signed.
Each FILE is one document; its media type follows the extension.

Examples:
  tekenctl dispatch --terminal kendari-setda-01 --signer siti.pem \
      --title "Undangan Rapat" --number "005/123/SETDA/XI/2026" --from "Diskominfo" surat.pdf
  tekenctl dispatch --terminal kendari-setda-01 --signer siti.pem --wait --expires 2h a.pdf b.pdf
  tekenctl dispatch --terminal kendari-setda-01 --signer siti.pem --format raw hash-me.bin
` + envHelp

func runDispatch(ctx context.Context, e env, args []string) int {
	fs := flags(e, "dispatch", dispatchHelp)
	sf := addSettingsFlags(fs, true)
	fs.StringVar(&sf.terminal, "terminal", "", "terminal `ID` (TEKEN_TERMINAL)")
	signer := fs.String("signer", "", "signer certificate `CERT.pem` of the official who must sign")
	title := fs.String("title", "", "job `TITLE` (perihal; default: the first file's name)")
	number := fs.String("number", "", "letter `NUMBER` (nomor surat)")
	from := fs.String("from", "", "`SENDER` shown to the official (default tekenctl)")
	expires := fs.Duration("expires", 24*time.Hour, "the job expires after `DURATION`")
	format := fs.String("format", "cms", "signature `FORMAT`: cms or raw")
	wait := fs.Bool("wait", false, "wait for the result; exit 0 only if signed")
	timeout := fs.Duration("timeout", 30*time.Second, "wait at most `DURATION` for the receipt")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	st, err := sf.load(e)
	if err != nil {
		return fail(e, "dispatch", err)
	}
	switch {
	case st.Terminal == "":
		return usageErr(e, "dispatch", "no terminal (--terminal)")
	case *signer == "":
		return usageErr(e, "dispatch", "no signer certificate (--signer)")
	case fs.NArg() == 0:
		return usageErr(e, "dispatch", "no documents")
	case *format != "cms" && *format != "raw":
		return usageErr(e, "dispatch", "--format %q: want cms or raw", *format)
	case *expires <= 0:
		return usageErr(e, "dispatch", "--expires must be positive")
	}
	label := "waiting for the terminal's receipt"
	if *wait {
		label = "waiting for the terminal and then the official"
	}
	p := ctl.StartProgress(e.stderr, isTerminal(e.stderr), label)
	out, err := ctl.Dispatch(ctx, ctl.DispatchOptions{Settings: st, SignerCert: *signer,
		Title: *title, Number: *number, From: *from, Expires: *expires, Format: api.Format(*format),
		Files: fs.Args(), Wait: *wait, ReceiptTimeout: *timeout})
	p.Stop()
	var refused *ctl.RefusedError
	var notSigned *ctl.NotSignedError
	switch {
	case errors.As(err, &refused):
		fmt.Fprintf(e.stdout, "%s refused %s\n", out.Job.JobID, refused.Reason)
		return fail(e, "dispatch", err)
	case errors.As(err, &notSigned):
		fmt.Fprintf(e.stdout, "%s %s %s\n", out.Job.JobID, notSigned.Result.Outcome, notSigned.Result.Reason)
		return fail(e, "dispatch", err)
	case err != nil:
		return fail(e, "dispatch", err)
	}
	if out.Result != nil {
		fmt.Fprintf(e.stdout, "%s signed\n", out.Job.JobID)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "%s %s\n", out.Job.JobID, out.Receipt.Status)
	return exitOK
}
