package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
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
receipt and prints "JOBID stored", or "JOBID refused REASON". With --wait
it then waits for the official to act, prints "JOBID signed" (or
"JOBID rejected REASON") and exits 0 only if the job was signed. The
signed result stays on the terminal until "tekenctl results" takes it:
dispatch acknowledges no result. Each FILE is one document; its media type
follows the extension.

With --format pades the terminal returns each PDF signed (PAdES), with a
visible block "Ditandatangani secara elektronik oleh", the official's name,
NIP, the date and a QR code of --verify-url. --page and --rect place it:
--rect x,y,w,h in PDF points (1/72 inch), the origin at the lower left
corner of the page and y growing upwards (an A4 page is 595 x 842). Without
them the block stands in the bottom right corner of the last page;
--invisible asks for no block. A placement the PDF has no room for is
refused here, or by the terminal in its receipt.

Job version 2, for a terminal whose status lists it (tekenctl fleet):
--mark paraf (with --initials) or ttd, --anchor TEXT (with
--anchor-occurrence and --anchor-offset) instead of --rect, --jabatan, and
--certify for the last signer's ttd.

Examples:
  tekenctl dispatch --terminal kendari-setda-01 --signer siti.pem \
      --title "Undangan Rapat" --number "005/123/SETDA/XI/2026" --from "Diskominfo" surat.pdf
  tekenctl dispatch --terminal kendari-setda-01 --signer siti.pem --format pades \
      --page 1 --rect 350,40,210,80 --verify-url https://tte.example.go.id/v/005-123 surat.pdf
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
	format := fs.String("format", "cms", "signature `FORMAT`: cms, raw or pades (the signed PDF)")
	page := fs.Int("page", 0, "pades: the visible block on page `N` (1-based; default the last page)")
	rect := fs.String("rect", "", "pades: the visible block at `x,y,w,h` in PDF points, origin at the page's lower left corner (default bottom right)")
	verifyURL := fs.String("verify-url", "", "pades: the `URL` the visible block's QR code opens")
	invisible := fs.Bool("invisible", false, "pades: no visible block")
	mark := fs.String("mark", "", "pades, job version 2: `MARK` ttd (the full block) or paraf (initials and date)")
	initials := fs.String("initials", "", "pades, --mark paraf: the `INITIALS` the paraf shows (default: the name's initials)")
	anchor := fs.String("anchor", "", "pades, job version 2: place the block at the `TEXT` in the letter (e.g. ^) instead of --rect")
	occurrence := fs.Int("anchor-occurrence", 0, "pades: the `N`th occurrence of --anchor (default the first)")
	offset := fs.String("anchor-offset", "", "pades: move the block `dx,dy` points from the anchor text's lower left corner")
	jabatan := fs.String("jabatan", "", "job version 2: the official's `POSITION`, written under the name")
	certify := fs.Bool("certify", false, "pades, job version 2: this signature certifies the letter (the last signer's)")
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
	case *format != "cms" && *format != "raw" && *format != "pades":
		return usageErr(e, "dispatch", "--format %q: want cms, raw or pades", *format)
	case *expires <= 0:
		return usageErr(e, "dispatch", "--expires must be positive")
	}
	visible, err := placement(fs, api.Format(*format), *page, *rect, *verifyURL, *invisible)
	if err != nil {
		return usageErr(e, "dispatch", "%v", err)
	}
	if err := marks(visible, *mark, *initials, *anchor, *occurrence, *offset); err != nil {
		return usageErr(e, "dispatch", "%v", err)
	}
	p := ctl.StartProgress(e.stderr, isTerminal(e.stderr), "waiting for the terminal's receipt")
	out, err := ctl.Dispatch(ctx, ctl.DispatchOptions{Settings: st, SignerCert: *signer,
		Title: *title, Number: *number, From: *from, Expires: *expires, Format: api.Format(*format),
		Visible: visible, Jabatan: *jabatan, Certify: *certify, Files: fs.Args(), Wait: *wait, ReceiptTimeout: *timeout,
		// The receipt is printed as it comes: with --wait the official
		// may take hours, and the job is safe on the terminal already.
		OnReceipt: func(r *api.Receipt) {
			p.Stop()
			fmt.Fprintf(e.stdout, "%s %s\n", r.JobID, r.Status)
			if *wait {
				p = ctl.StartProgress(e.stderr, isTerminal(e.stderr), "waiting for the official")
			}
		}})
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
	}
	return exitOK
}

// placement is the visible block the flags ask for: for pades, one in the
// terminal's default place unless --page, --rect or --invisible say
// otherwise; for the other formats none, and the pades flags are a
// mistake.
func placement(fs *flag.FlagSet, format api.Format, page int, rect, verifyURL string, invisible bool) (*api.Visible, error) {
	if format != api.FormatPAdES {
		for _, name := range []string{"page", "rect", "verify-url", "invisible"} {
			if isSet(fs, name) {
				return nil, fmt.Errorf("--%s is for --format pades", name)
			}
		}
		return nil, nil
	}
	v, err := ctl.Placement(page, rect, verifyURL, invisible)
	if err != nil {
		return nil, fmt.Errorf("--page, --rect, --verify-url, --invisible: %w", err)
	}
	return v, nil
}

// marks adds the fields of v 2 the flags ask for to the visible block.
func marks(v *api.Visible, mark, initials, anchor string, occurrence int, offset string) error {
	if v == nil {
		if mark != "" || initials != "" || anchor != "" || occurrence != 0 || offset != "" {
			return errors.New("--mark, --initials and --anchor are for a visible block of --format pades")
		}
		return nil
	}
	v.Mark, v.Initials = api.Mark(mark), initials
	if anchor == "" {
		if occurrence != 0 || offset != "" {
			return errors.New("--anchor-occurrence and --anchor-offset need --anchor")
		}
		return nil
	}
	if len(v.Rect) != 0 {
		return errors.New("--rect or --anchor, not both")
	}
	a := &api.Anchor{Text: anchor, Occurrence: occurrence}
	if offset != "" {
		dx, dy, ok := strings.Cut(offset, ",")
		x, errX := strconv.ParseFloat(strings.TrimSpace(dx), 64)
		y, errY := strconv.ParseFloat(strings.TrimSpace(dy), 64)
		if !ok || errX != nil || errY != nil {
			return fmt.Errorf("--anchor-offset %q: want dx,dy in points", offset)
		}
		a.Offset = []float64{x, y}
	}
	v.Anchor = a
	return nil
}

// isSet reports whether the flag was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
