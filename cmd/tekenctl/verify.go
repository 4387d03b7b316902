package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tekenid/teken/internal/ctl"
	"github.com/tekenid/teken/signature/revocation"
	"github.com/tekenid/teken/validation"
)

func init() {
	commands["verify"] = command{"verify signatures and signed PDFs against a CA", runVerify}
}

const verifyHelp = `Usage: tekenctl verify [--ca BUNDLE.pem] [--online] [--json] SIGNED.pdf...
       tekenctl verify [--ca BUNDLE.pem] [--online] [--json] RESULT.json DOC...
       tekenctl verify [--ca BUNDLE.pem] [--online] [--json] --sig FILE.p7s DOC

Checks signatures and prints a report for each: its verdict, VALID,
INDETERMINATE (intact, but the signer's trust is not established, and the
line says why: an unknown CA, no revocation data, a certificate expired
with no timestamp) or INVALID (and why), then each check on a line:

  integrity   the signature value, the message digest, the byte range
  chain       the signer to the CA bundle, at the timestamp's time if one
              is trusted, else the claimed signing time (pades) or now
  revocation  the signer's status at that time, and from where: the PDF's
              DSS, the CMS's CAdES revocation-values, --crl files, or
              --online; "no data" is INDETERMINATE
  timestamp   the signature (or document) timestamp: genTime, authority,
              trusted or not
  level       the level reached: B-B, B-T, B-LT, B-LTA (pades); B-B, B-T,
              B-LT (cms)

A verdict is the worst of its checks: an INDETERMINATE one never reads as
VALID.

A signed PDF (a pades result as 'tekenctl results --out' writes it) is
checked signature by signature, document timestamps too, and whether the
last covers the whole file: anything appended after it but validation
data (a DSS) is reported. A result (RESULT.json) is matched to the
documents by their SHA-256; a pades result's signed PDF must also begin
with the document as dispatched. --sig checks one detached CMS signature.

Nothing is fetched unless --online: then a signer whose embedded data and
--crl files say nothing of its status is asked about at its OCSP
responder or CRL distribution point, each check within 30 seconds.

Exit codes: 0 every signature VALID, 1 any other verdict, 2 usage error.

Examples:
  tekenctl verify --ca ca-bundle.pem signed/0b7e…-surat.pdf
  tekenctl verify --ca ca-bundle.pem --json signed/*.pdf | jq .status
  tekenctl verify --ca ca-bundle.pem signed/0b7e….json surat.pdf
  tekenctl verify --ca ca-bundle.pem --sig signed/0b7e…-surat.pdf.p7s surat.pdf
  tekenctl verify --ca ca-bundle.pem --tsa-ca tsa-ca.pem --crl ca.crl signed/0b7e…-surat.pdf
  tekenctl verify --ca ca-bundle.pem --online signed/0b7e…-surat.pdf
  TEKEN_SIGNER_CA=ca-bundle.pem tekenctl verify result.json a.pdf b.pdf
`

func runVerify(ctx context.Context, e env, args []string) int {
	fs := flags(e, "verify", verifyHelp)
	config := fs.String("config", "", "config `FILE` (TOML)")
	ca := fs.String("ca", "", "CA `BUNDLE` signers chain to (TEKEN_SIGNER_CA, then TEKEN_CA)")
	tsaCA := fs.String("tsa-ca", "", "CA `BUNDLE` timestamp authorities chain to (default: the --ca bundle)")
	var crls []string
	fs.Func("crl", "a CRL `FILE` (PEM or DER) of a signer's CA; repeat for more", func(s string) error {
		crls = append(crls, s)
		return nil
	})
	sig := fs.String("sig", "", "a detached CMS signature `FILE` (.p7s) to check against one DOC")
	online := fs.Bool("online", false, "fetch the revocation status of a signer the signature's own data does not decide (OCSP, then CRL)")
	asJSON := fs.Bool("json", false, "print one JSON object per file checked (see docs/TEKENCTL.md)")
	if code, ok := parse(e, fs, args); !ok {
		return code
	}
	mode, err := verifyMode(fs.Args(), *sig)
	if err != nil {
		return usageErr(e, "verify", "%v", err)
	}
	st, err := ctl.Load(e.getenv, *config)
	if err != nil {
		return fail(e, "verify", err)
	}
	bundle := firstOf(*ca, st.SignerCA, st.CA)
	if bundle == "" {
		return usageErr(e, "verify", "no CA bundle (--ca, TEKEN_SIGNER_CA or TEKEN_CA)")
	}
	trust, err := loadTrust(bundle, *tsaCA, crls)
	if err != nil {
		return fail(e, "verify", err)
	}
	if *online {
		trust.Online = revocation.New(revocation.Config{})
		trust.OnlineTimeout = onlineTimeout
	}
	verdicts, err := mode(ctx, trust)
	if err != nil {
		return fail(e, "verify", err)
	}
	if err := validation.WriteVerdicts(e.stdout, verdicts, *asJSON); err != nil {
		return fail(e, "verify", err)
	}
	for _, v := range verdicts {
		if !v.Valid() {
			return exitFailure
		}
	}
	return exitOK
}

// onlineTimeout bounds the fetch for one signer: its OCSP responder and,
// failing that, its CRL.
const onlineTimeout = 30 * time.Second

// verifier checks what the arguments name.
type verifier func(context.Context, validation.Trust) ([]validation.Verdict, error)

// verifyMode tells the three forms apart: --sig, signed PDFs (every
// argument starts as a PDF does), and a result with its documents.
func verifyMode(args []string, sig string) (verifier, error) {
	switch {
	case sig != "" && len(args) != 1:
		return nil, fmt.Errorf("--sig takes exactly one document")
	case sig != "":
		return func(ctx context.Context, t validation.Trust) ([]validation.Verdict, error) {
			return verifySig(ctx, sig, args[0], t)
		}, nil
	case len(args) == 0:
		return nil, fmt.Errorf("want signed PDFs, or RESULT.json and at least one document")
	}
	head, err := readHead(args[0])
	if err != nil {
		return func(context.Context, validation.Trust) ([]validation.Verdict, error) { return nil, err }, nil
	}
	if !ctl.IsPDF(head) {
		if len(args) < 2 {
			return nil, fmt.Errorf("want signed PDFs, or RESULT.json and at least one document")
		}
		return func(ctx context.Context, t validation.Trust) ([]validation.Verdict, error) {
			return verifyResult(ctx, args[0], args[1:], t)
		}, nil
	}
	return func(ctx context.Context, t validation.Trust) ([]validation.Verdict, error) {
		return verifyPDFs(ctx, args, t)
	}, nil
}

// readHead reads the first kilobyte of a file, where a PDF says it is one.
func readHead(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 1024)
	n, err := io.ReadFull(f, b)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return b[:n], err
}

func verifySig(ctx context.Context, sigPath, docPath string, t validation.Trust) ([]validation.Verdict, error) {
	sig, err := os.ReadFile(sigPath)
	if err != nil {
		return nil, err
	}
	content, err := os.ReadFile(docPath)
	if err != nil {
		return nil, err
	}
	v := validation.VerifyCMS(ctx, sig, content, t)
	v.Document = docPath
	return []validation.Verdict{v}, nil
}

func verifyResult(ctx context.Context, resultPath string, docs []string, t validation.Trust) ([]validation.Verdict, error) {
	raw, err := os.ReadFile(resultPath)
	if err != nil {
		return nil, err
	}
	r, err := ctl.ReadResult(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", resultPath, err)
	}
	return validation.VerifyResult(ctx, r, docs, t)
}

func verifyPDFs(ctx context.Context, paths []string, t validation.Trust) ([]validation.Verdict, error) {
	out := make([]validation.Verdict, 0, len(paths))
	for _, p := range paths {
		pdf, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		v := validation.VerifyPDF(ctx, pdf, t)
		v.Document = p
		out = append(out, v)
	}
	return out, nil
}

func loadTrust(bundle, tsaBundle string, crlFiles []string) (validation.Trust, error) {
	var t validation.Trust
	var err error
	if t.Roots, err = validation.LoadRoots(bundle); err != nil {
		return t, err
	}
	if tsaBundle != "" {
		if t.TSARoots, err = validation.LoadRoots(tsaBundle); err != nil {
			return t, fmt.Errorf("--tsa-ca: %w", err)
		}
	}
	for _, f := range crlFiles {
		l, err := validation.LoadCRL(f)
		if err != nil {
			return t, err
		}
		t.CRLs = append(t.CRLs, l)
	}
	return t, nil
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
