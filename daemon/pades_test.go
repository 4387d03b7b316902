package daemon_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/demo"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

// A letter asked for as a signed PDF: the page previews where the visible
// block will stand, the result carries the signed PDF, which pdfsig and qpdf
// accept; a timestamp authority that does not answer leaves it B-B and the
// result says so; a PDF that cannot be signed fails with a reason.
func TestSignedPDFThroughTheTerminal(t *testing.T) {
	deadTSA := testenv.FreePort(t) // nothing listens there
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca, func(c *daemon.Config) {
		c.Signing.TSAURL = "http://127.0.0.1:" + strconv.Itoa(deadTSA) + "/tsa"
		c.Signing.TSATimeout = daemon.Duration(2 * time.Second)
	})
	siti := ca.NewOfficial(t, "Dr. Siti Rahmawati, M.Si.", "198703152010012003", "123456", 7001)
	pdf := demo.LetterPDF("Dinas Komunikasi dan Informatika", "188.4/890/DISKOMINFO/XI/2026",
		"Surat Keputusan Tim Percepatan Transformasi Digital", "Keputusan ini berlaku sejak tanggal ditetapkan.")

	doc := api.NewDocument("sk", "sk.pdf", "application/pdf", pdf)
	doc.Format = api.FormatPAdES
	doc.Visible = &api.Visible{VerifyURL: "https://tte.sultraprov.go.id/v/0001"}
	job := tm.DispatchDocs(siti, "Surat Keputusan Tim Percepatan", "188.4/890", doc)

	broken := api.NewDocument("rusak", "rusak.pdf", "application/pdf", []byte("%PDF-1.7\nnot really a pdf\n"))
	broken.Format = api.FormatPAdES
	bad := tm.DispatchDocs(siti, "Surat Rusak", "000/0", broken)
	select {
	case r := <-tm.Results:
		if r.JobID != bad.JobID || r.Outcome != api.OutcomeFailed || r.Reason != api.ReasonBadDocument || r.Detail == "" {
			t.Fatalf("broken PDF: result %+v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no result for the broken PDF")
	}

	bctx := startBrowser(t)
	s := shooter{t: t, ctx: bctx, dir: artifactsDir(t)}
	ctx := context.Background()
	if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	// The page opens at the block's page, scrolled to the mark: no
	// scrolling by the official (or the test) to find it.
	var inView bool
	run(t, bctx, "open the PDF with its block", chromedp.EmulateViewport(1024, 768), chromedp.Navigate(tm.KioskURL),
		chromedp.WaitVisible(`[data-open="`+job.JobID+`/0"]`), chromedp.Click(`[data-open="`+job.JobID+`/0"]`),
		chromedp.WaitVisible(`#pages canvas[data-rendered]`), chromedp.WaitVisible(`#block-mark`),
		chromedp.Poll(`!document.getElementById("pages").hasAttribute("data-rendering")`, nil),
		chromedp.Evaluate(`(() => { const p = document.getElementById("pages").getBoundingClientRect(),
			m = document.getElementById("block-mark").getBoundingClientRect();
			return m.top >= p.top && m.bottom <= p.bottom && m.left >= p.left && m.right <= p.right; })()`, &inView),
		chromedp.WaitVisible(`#doc-sign:not([disabled])`))
	if !inView {
		t.Error("the signature block's mark is not in view when the PDF opens")
	}
	s.shot("pades-preview-1024x768")

	// Signed as the page signs it; the page has opened the document.
	k := tm.Kiosk()
	k.Await("the letter", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == 1 && v.Jobs[0].Documents[0].Viewed })
	if code, out := k.Post("/api/sign", map[string]any{"job_ids": []string{job.JobID}, "pin": "123456"}); code != 200 {
		t.Fatalf("sign: %d %v", code, out)
	}
	var r *api.Result
	select {
	case r = <-tm.Results:
	case <-time.After(30 * time.Second):
		t.Fatal("no result")
	}
	if r.Outcome != api.OutcomeSigned || len(r.Documents) != 1 {
		t.Fatalf("result %+v", r)
	}
	sd := r.Documents[0]
	if sd.Format != api.FormatPAdES || sd.Level != api.LevelBB || sd.TimestampError == "" {
		t.Fatalf("signed document: format %s level %s timestamp error %q", sd.Format, sd.Level, sd.TimestampError)
	}
	if !strings.HasPrefix(string(sd.Signature), string(pdf)) {
		t.Fatal("the signed PDF does not start with the bytes the official saw")
	}
	out := filepath.Join(t.TempDir(), "signed.pdf")
	if err := os.WriteFile(out, sd.Signature, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := exec.Command(testenv.LookPath(t, "pdfsig"), out).CombinedOutput()
	if err != nil || !strings.Contains(string(res), "Signature is Valid") || !strings.Contains(string(res), "Total document signed") {
		t.Fatalf("pdfsig: %v\n%s", err, res)
	}
	if res, err := exec.Command(testenv.LookPath(t, "qpdf"), "--check", out).CombinedOutput(); err != nil {
		t.Fatalf("qpdf --check: %v\n%s", err, res)
	}
	// The signed page as a picture, beside the kiosk screenshots.
	_ = exec.Command(testenv.LookPath(t, "pdftoppm"), "-png", "-r", "60", "-singlefile", out,
		filepath.Join(artifactsDir(t), "signed-pdf")).Run()
	if *updateDocs {
		_ = exec.Command(testenv.LookPath(t, "pdftoppm"), "-png", "-r", "60", "-singlefile", out,
			filepath.Join("..", "docs", "img", "signed-pdf")).Run()
	}
	text, err := exec.Command(testenv.LookPath(t, "pdftotext"), out, "-").CombinedOutput()
	if err != nil || !strings.Contains(string(text), "Ditandatangani secara elektronik oleh") || !strings.Contains(string(text), "198703152010012003") {
		t.Fatalf("visible block text: %v\n%s", err, text)
	}
}
