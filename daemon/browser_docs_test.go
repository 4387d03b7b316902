package daemon_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/internal/tekentest"
)

// bombOps is how many strokes the content bomb draws: about 19 MB of
// content from 44 kB on the wire; pdf.js on the test machine needs over
// ten seconds for a third of them.
const bombOps = 1_000_000

func pngOf(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: uint8(x), G: uint8(y), B: 160, A: 255})
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

// The documents the issue found: a .docx (let in by
// allow_unrenderable_documents), a PDF whose page content is a bomb, a PDF
// pdf.js refuses; and pictures that do not decode or would decode to
// gigabytes. Each is marked failed with the reason in plain words and
// its letter cannot be chosen; text is shown as text and pictures as
// pictures, nothing in a frame; a letter of two documents is ready once
// both were read; and tekend itself refuses a letter not opened, before
// any PIN try.
func TestKioskRefusesBadDocumentsInChromium(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca, func(c *daemon.Config) { c.Signing.AllowUnrenderableDocuments = true })
	bctx := startBrowser(t)
	sw := newSweeper(t, bctx)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 4201)
	docx := tm.DispatchDocs(siti, "Laporan Kegiatan dalam Word", "400/1/SETDA/XI/2026",
		api.NewDocument("laporan", "laporan.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
			[]byte("PK\x03\x04\x14\x00\x06\x00 word/document.xml: not something a browser shows")))
	bombDoc := api.NewDocument("berat", "berat.pdf", "application/pdf", contentBombPDF(bombOps))
	bombDoc.Format = api.FormatPAdES
	bomb := tm.DispatchDocs(siti, "Surat dengan Halaman Sangat Berat", "400/2/SETDA/XI/2026", bombDoc)
	garbage := tm.DispatchDocs(siti, "Surat Rusak", "400/3/SETDA/XI/2026", api.NewDocument("rusak", "rusak.pdf", "application/pdf", garbagePDF()))
	const note = "NOTA DINAS\nNomor: 400/4/SETDA/XI/2026\n\n<b>Bukan HTML</b> & tetap teks biasa.\n"
	text := tm.DispatchDocs(siti, "Nota Dinas dalam Teks", "400/4/SETDA/XI/2026", api.NewDocument("nota", "nota.txt", "text/plain", []byte(note)))
	picture := tm.DispatchDocs(siti, "Denah Lokasi Rapat", "400/5/SETDA/XI/2026", api.NewDocument("denah", "denah.png", "image/png", pngOf(300, 200)))
	two := tm.DispatchDocs(siti, "Surat dengan Lampiran", "400/6/SETDA/XI/2026",
		api.NewDocument("surat", "surat.pdf", "application/pdf", pagedLetterPDF("Surat dengan Lampiran", []string{"Isi surat."})),
		api.NewDocument("lampiran", "lampiran.txt", "text/plain", []byte("Lampiran: daftar hadir\n")))
	unread := tm.Dispatch(siti, "Surat yang Belum Dibuka", "400/7/SETDA/XI/2026")
	brokenPNG := tm.DispatchDocs(siti, "Foto yang Rusak", "400/8/SETDA/XI/2026", api.NewDocument("foto", "foto.png", "image/png", []byte("not a picture at all")))
	// A PNG whose header says 100000 × 100000 pixels: 40 GB to decode.
	huge := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x06\x00\x00\x00"), make([]byte, 64)...)
	hugePNG := tm.DispatchDocs(siti, "Peta yang Sangat Besar", "400/9/SETDA/XI/2026", api.NewDocument("peta", "peta.png", "image/png", huge))

	run(t, bctx, "open the kiosk", chromedp.EmulateViewport(1024, 768), chromedp.Navigate(tm.KioskURL), chromedp.WaitVisible(`[data-state=idle]`))
	if err := siti.Card.Insert(context.Background(), tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	run(t, bctx, "the letters", chromedp.WaitVisible(`[data-job="`+unread.JobID+`"]`))

	// refused opens a letter's document and waits for the page to say it
	// cannot be shown, for the reason given.
	refused := func(what string, j *api.Job, reason string, bound time.Duration) string {
		t.Helper()
		var says string
		runFor(t, bctx, bound, what, chromedp.Click(`[data-open="`+j.JobID+`/0"]`),
			chromedp.WaitVisible(`#doc-failed [data-reason=`+reason+`]`), chromedp.Text(`#doc-failed`, &says))
		if !strings.Contains(says, "tidak dapat ditampilkan") || !strings.Contains(says, "tidak dapat ditandatangani") {
			t.Errorf("%s: the page says %q", what, says)
		}
		return says
	}
	// unpickable goes back to the list and tries to choose the letter.
	unpickable := func(what string, j *api.Job) {
		t.Helper()
		row := `[data-job="` + j.JobID + `"]`
		var signDisabled, checked bool
		var status string
		run(t, bctx, what, chromedp.WaitVisible(`#doc-sign[disabled]`), chromedp.Evaluate(`document.getElementById("doc-sign").disabled`, &signDisabled),
			chromedp.Click(`#doc-close`), chromedp.WaitVisible(row+`[data-failed] input[type=checkbox][disabled]`),
			chromedp.Click(row+` .pick`), chromedp.Evaluate(`document.querySelector('`+row+` input[type=checkbox]').checked`, &checked),
			chromedp.Text(row+` .status`, &status))
		if !signDisabled || checked || !strings.Contains(status, "tidak dapat ditandatangani di terminal ini") {
			t.Errorf("%s: sign enabled %v, chosen %v, status %q", what, !signDisabled, checked, status)
		}
	}

	refused("the .docx", docx, "doc_reason_type", 20*time.Second)
	sw.sweep("document-unrenderable", []string{"#doc-close", "#doc-reject", "#doc-sign", "#doc-failed"}, nil)
	unpickable("the .docx unpickable", docx)

	refused("the PDF pdf.js refuses", garbage, "doc_reason_broken", 20*time.Second)
	unpickable("the broken PDF unpickable", garbage)

	refused("a picture that does not decode", brokenPNG, "doc_reason_broken", 20*time.Second)
	unpickable("the broken picture unpickable", brokenPNG)
	refused("a picture too large", hugePNG, "doc_reason_large", 20*time.Second)
	unpickable("the huge picture unpickable", hugePNG)

	start := time.Now()
	says := refused("the content bomb", bomb, "doc_reason_slow", 60*time.Second)
	took := time.Since(start)
	t.Logf("the content bomb failed after %v: %q", took.Round(100*time.Millisecond), says)
	if took < 9*time.Second || !strings.Contains(says, "10 detik") {
		t.Errorf("the content bomb failed after %v, before the page's time limit: %q", took, says)
	}
	unpickable("the content bomb unpickable", bomb)

	// Text as text, pictures as pictures, no frame anywhere.
	var shown string
	var frames, width int
	run(t, bctx, "the text document", chromedp.Click(`[data-open="`+text.JobID+`/0"]`), chromedp.WaitVisible(`pre.doctext[data-rendered]`),
		chromedp.Evaluate(`document.querySelector("pre.doctext").textContent`, &shown),
		chromedp.Evaluate(`document.querySelectorAll("iframe, object, embed, pre b").length`, &frames),
		chromedp.WaitVisible(`#doc-sign:not([disabled])`), chromedp.Click(`#doc-close`),
		chromedp.Click(`[data-open="`+picture.JobID+`/0"]`), chromedp.WaitVisible(`img.docimage[data-rendered]`),
		chromedp.Evaluate(`document.querySelector("img.docimage").naturalWidth`, &width),
		chromedp.WaitVisible(`#doc-sign:not([disabled])`), chromedp.Click(`#doc-close`))
	if shown != note || frames != 0 || width != 300 {
		t.Errorf("text shown %q (frames, objects or markup: %d); picture %d px wide", shown, frames, width)
	}

	// Two documents: ready once both were read, one after the other.
	var label, line string
	run(t, bctx, "the first of two", chromedp.Click(`[data-open="`+two.JobID+`/0"]`), chromedp.WaitVisible(`#pages canvas[data-rendered]`),
		chromedp.Text(`.doc-line`, &line), chromedp.WaitVisible(`#doc-status .hint`), chromedp.Text(`#doc-status`, &label))
	if !strings.HasPrefix(line, "Dokumen 1 dari 2") || !strings.Contains(label, "belum dibuka") {
		t.Errorf("first of two: %q, %q", line, label)
	}
	run(t, bctx, "the second of two", chromedp.WaitVisible(`#doc-sign[disabled]`), chromedp.Click(`#page-next`), chromedp.WaitVisible(`pre.doctext[data-rendered]`),
		chromedp.Text(`.doc-line`, &line), chromedp.WaitVisible(`#doc-sign:not([disabled])`), chromedp.Click(`#doc-close`))
	if !strings.HasPrefix(line, "Dokumen 2 dari 2") {
		t.Errorf("second of two: %q", line)
	}

	// Only the letters read and shown are chosen by "select all".
	run(t, bctx, "select all", chromedp.Click(`#select-all`), chromedp.Text(`#sign`, &label))
	if label != "Tanda tangani 3 surat" {
		t.Errorf("select all: %q, want the three good letters", label)
	}

	// tekend refuses a letter the page did not open, before any PIN try,
	// and the page says so in words.
	var tries, after int
	run(t, bctx, "sign a letter not opened", chromedp.Evaluate(`view.tries_left || 0`, &tries),
		chromedp.Evaluate(`openPIN(["`+unread.JobID+`"], "list")`, nil), chromedp.WaitVisible(`#pin`),
		chromedp.SendKeys(`#pin`, "123456"), chromedp.Click(`#pin-submit`),
		chromedp.WaitVisible(`[data-state=token] [data-error=err_not_viewed]`), chromedp.Text(`[data-error=err_not_viewed]`, &says),
		chromedp.Evaluate(`view.tries_left || 0`, &after))
	if !strings.Contains(says, "Surat yang Belum Dibuka") || !strings.Contains(says, "belum dibuka") || after != tries {
		t.Errorf("refused unread letter: %q, tries %d then %d", says, tries, after)
	}
}
