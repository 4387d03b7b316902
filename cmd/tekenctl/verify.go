package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/tekenid/teken/internal/ctl"
)

func init() {
	commands["verify"] = command{"verify signatures against documents and a CA", runVerify}
}

const verifyHelp = `Usage: tekenctl verify [--ca BUNDLE.pem] RESULT.json DOC...
       tekenctl verify [--ca BUNDLE.pem] --sig FILE.p7s DOC

Verifies the signatures of a result (as 'tekenctl results --out' writes it)
against the documents, matched by their SHA-256, or one detached CMS
signature against one document. The signer must chain to the CA bundle.
Prints, per document, the signer's name and NIP, the signing time and the
verdict. Exit codes: 0 all valid, 1 any invalid, 2 usage error.

Examples:
  tekenctl verify --ca ca-bundle.pem signed/0b7e….json surat.pdf
  tekenctl verify --ca ca-bundle.pem --sig signed/0b7e…-surat.pdf.p7s surat.pdf
  TEKEN_SIGNER_CA=ca-bundle.pem tekenctl verify result.json a.pdf b.pdf
` + envHelp

func runVerify(_ context.Context, e env, args []string) int {
	fs := flags(e, "verify", verifyHelp)
	config := fs.String("config", "", "config `FILE` (TOML)")
	ca := fs.String("ca", "", "CA `BUNDLE` signers chain to (TEKEN_SIGNER_CA, then TEKEN_CA)")
	sig := fs.String("sig", "", "a detached CMS signature `FILE` (.p7s) to check against one DOC")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	switch {
	case *sig != "" && fs.NArg() != 1:
		return usageErr(e, "verify", "--sig takes exactly one document")
	case *sig == "" && fs.NArg() < 2:
		return usageErr(e, "verify", "want RESULT.json and at least one document")
	}
	st, err := ctl.Load(e.getenv, *config)
	if err != nil {
		return fail(e, "verify", err)
	}
	bundle := *ca
	if bundle == "" {
		bundle = st.SignerCA
	}
	if bundle == "" {
		bundle = st.CA
	}
	if bundle == "" {
		return usageErr(e, "verify", "no CA bundle (--ca, TEKEN_SIGNER_CA or TEKEN_CA)")
	}
	roots, err := ctl.LoadRoots(bundle)
	if err != nil {
		return fail(e, "verify", err)
	}
	var verdicts []ctl.Verdict
	if *sig != "" {
		sigBytes, err := os.ReadFile(*sig)
		if err != nil {
			return fail(e, "verify", err)
		}
		content, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return fail(e, "verify", err)
		}
		v := ctl.VerifyCMS(sigBytes, content, roots)
		v.Document = fs.Arg(0)
		verdicts = append(verdicts, v)
	} else {
		raw, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return fail(e, "verify", err)
		}
		r, err := ctl.ReadResult(raw)
		if err != nil {
			return fail(e, "verify", fmt.Errorf("%s: %w", fs.Arg(0), err))
		}
		if verdicts, err = ctl.VerifyResult(r, fs.Args()[1:], roots); err != nil {
			return fail(e, "verify", err)
		}
	}
	code := exitOK
	for _, v := range verdicts {
		fmt.Fprintf(e.stdout, "%s\n", v.Document)
		if v.Signer != "" {
			fmt.Fprintf(e.stdout, "  signer:  %s (NIP %s)\n", v.Signer, orDash(v.NIP))
		}
		if !v.SigningTime.IsZero() {
			fmt.Fprintf(e.stdout, "  signed:  %s\n", v.SigningTime.Local().Format(time.RFC3339))
		}
		if v.Valid() {
			fmt.Fprintf(e.stdout, "  verdict: VALID (%s)\n", v.Format)
			continue
		}
		fmt.Fprintf(e.stdout, "  verdict: INVALID: %v\n", v.Err)
		code = exitFailure
	}
	return code
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
