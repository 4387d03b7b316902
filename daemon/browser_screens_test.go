package daemon_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/tekentest"
)

// dispatchLetter sends a letter with its further fields and due date, and
// waits for its receipt.
func dispatchLetter(t *testing.T, tm *tekentest.Terminal, signer *tekentest.Official, title, number string, due time.Duration, fields []api.Field, docs ...api.Document) *api.Job {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	j := &api.Job{
		V: api.Version, JobID: api.NewJobID(), Terminal: tm.ID, IssuedAt: now, ExpiresAt: now.Add(due),
		Signer: api.Signatory{CertSHA256: signer.Hash, Name: signer.Name},
		Title:  title, Number: number, Sender: "Sekretariat Daerah Provinsi Sulawesi Tenggara",
		Fields: fields, Documents: docs,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tm.Central.Publish(ctx, j); err != nil {
		t.Fatalf("publish job: %v", err)
	}
	tm.AwaitReceipt(j.JobID, api.ReceiptStored)
	return j
}

// skSecondPage fills the page the signature block stands on, down to it.
var skSecondPage = func() []string {
	lines := []string{"MEMUTUSKAN:", ""}
	for i, d := range []string{"KESATU", "KEDUA", "KETIGA", "KEEMPAT", "KELIMA", "KEENAM"} {
		lines = append(lines, fmt.Sprintf("%s : Tim bertugas menyusun peta jalan tanda tangan elektronik tahap %d,", d, i+1),
			"           melaporkan kemajuannya setiap bulan kepada Gubernur,", "           dan berkoordinasi dengan perangkat daerah terkait.", "")
	}
	return append(lines, "Keputusan ini berlaku sejak tanggal ditetapkan.", "", "Ditetapkan di Kendari", "pada tanggal 2 Desember 2026")
}()

var idMonths = []string{"Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober", "November", "Desember"}

// The selectors of the document view's actions.
var docActions = []string{"#doc-close", "#doc-reject", "#doc-sign", "#page-prev", "#page-next", "#page-label",
	"#zoom-out", "#zoom-in", "#zoom-fit", "#fingerprint"}

// Every screen of the official's flow at every kiosk size, with five
// letters: the actions on screen without scrolling the page, axe-core
// content, a screenshot each; and on the way what each screen must say.
func TestKioskScreensInChromium(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca)
	bctx := startBrowser(t)
	sw := newSweeper(t, bctx)
	siti := ca.NewOfficial(t, "Dr. Siti Rahmawati, M.Si.", "198703152010012003", "123456", 4101)
	paged := pagedLetterPDF("Undangan Rapat Koordinasi Penyusunan APBD 2027",
		[]string{"Dalam rangka penyusunan APBD 2027, kami mengundang Bapak/Ibu."},
		[]string{"Hari/tanggal : Senin, 7 Desember 2026", "Tempat : Ruang Rapat Bahteramas"},
		[]string{"Demikian undangan ini disampaikan."})
	a := dispatchLetter(t, tm, siti, "Undangan Rapat Koordinasi Penyusunan APBD 2027", "005/1234/SETDA/XI/2026", 6*time.Hour,
		[]api.Field{{Label: "Sifat", Value: "Segera"}, {Label: "Lampiran", Value: "1 berkas"}},
		api.NewDocument("undangan", "undangan.pdf", "application/pdf", paged))
	sk := api.NewDocument("sk", "sk.pdf", "application/pdf", pagedLetterPDF("Surat Keputusan Tim Percepatan Transformasi Digital",
		[]string{"Menetapkan susunan Tim Percepatan Transformasi Digital."}, skSecondPage))
	sk.Format = api.FormatPAdES
	sk.Visible = &api.Visible{VerifyURL: "https://tte.sultraprov.go.id/v/0002"}
	b := dispatchLetter(t, tm, siti, "Surat Keputusan Tim Percepatan Transformasi Digital", "188.4/890/DISKOMINFO/XI/2026", 30*time.Hour, nil, sk)
	c := tm.Dispatch(siti, "Nota Dinas Penyesuaian Jam Pelayanan Publik", "800/567/BKD/XI/2026")
	d := tm.Dispatch(siti, "Surat Edaran Libur Nasional dan Cuti Bersama", "003/789/SETDA/XI/2026")
	e := tm.Dispatch(siti, "Surat Tugas Perjalanan Dinas ke Kabupaten Kolaka", "094/001/SETDA/XI/2026")

	run(t, bctx, "open the kiosk", chromedp.EmulateViewport(1024, 768), chromedp.Navigate(tm.KioskURL), chromedp.WaitVisible(`[data-state=idle] .tap`))
	sw.sweep("idle", []string{"#lang", ".tap"}, nil)

	if err := siti.Card.Insert(context.Background(), tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	var order []string
	var text, row string
	run(t, bctx, "the letters", chromedp.WaitVisible(`[data-job="`+b.JobID+`"]`),
		chromedp.Evaluate(`[...document.querySelectorAll(".letter")].map((e) => e.dataset.job)`, &order),
		chromedp.Text(`main`, &text), chromedp.Text(`[data-job="`+a.JobID+`"]`, &row))
	if want := []string{a.JobID, c.JobID, d.JobID, e.JobID, b.JobID}; strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("letters in the order %v, want by due date %v", order, want)
	}
	due := a.ExpiresAt.In(time.Local)
	for _, want := range []string{"Sifat: Segera", "Lampiran: 1 berkas", "1 dokumen", "Nomor: 005/1234/SETDA/XI/2026",
		"Dari: Sekretariat Daerah", fmt.Sprintf("Batas waktu: %d %s %d", due.Day(), idMonths[due.Month()-1], due.Year()), "buka dan baca dokumennya dulu"} {
		if !strings.Contains(row, want) {
			t.Errorf("the letter's row lacks %q: %q", want, row)
		}
	}
	if strings.Index(row, "Sifat") > strings.Index(row, "Lampiran") {
		t.Errorf("fields out of order: %q", row)
	}
	if strings.Contains(text, a.Documents[0].SHA256[:12]) || strings.Contains(text, "SHA-256") {
		t.Errorf("the list shows a hash: %q", text)
	}
	if !strings.Contains(text, "5 surat menunggu tanda tangan Anda") || !strings.Contains(text, "Buka setiap dokumen terlebih dahulu") {
		t.Errorf("the list says %q", text)
	}
	first := `[data-job="` + a.JobID + `"] `
	sw.sweep("letters", []string{"#sign", "#select-all", "#lang", "#open-first", first + "[data-open]", first + "[data-reject]"}, nil)

	// The document view: three pages, turned and zoomed.
	var label, hash string
	run(t, bctx, "open the paged letter", chromedp.Click(first+`[data-open]`), chromedp.WaitVisible(`#pages canvas[data-page="1"][data-rendered]`),
		chromedp.Text(`#page-label`, &label), chromedp.Text(`#fingerprint`, &hash))
	if label != "Halaman 1 dari 3" {
		t.Errorf("page label %q", label)
	}
	if !strings.HasPrefix(hash, "Sidik dokumen:") || strings.ReplaceAll(strings.TrimPrefix(hash, "Sidik dokumen:"), " ", "") != a.Documents[0].SHA256 {
		t.Errorf("fingerprint %q, want %s", hash, a.Documents[0].SHA256)
	}
	sw.sweep("document", docActions, nil)
	run(t, bctx, "next page", chromedp.Click(`#page-next`), chromedp.WaitVisible(`#pages canvas[data-page="2"][data-rendered]`), chromedp.Text(`#page-label`, &label))
	if label != "Halaman 2 dari 3" {
		t.Errorf("page label %q after next", label)
	}
	width := func(what string, click string) float64 {
		var w float64
		run(t, bctx, what, chromedp.Click(click), chromedp.Poll(`!document.getElementById("pages").hasAttribute("data-rendering")`, nil),
			chromedp.Evaluate(`parseFloat(document.querySelector("#pages canvas").style.width)`, &w))
		return w
	}
	var fit float64
	run(t, bctx, "fit width", chromedp.Evaluate(`(() => { const p = document.getElementById("pages"), s = getComputedStyle(p);
		return p.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight); })()`, &fit))
	w0 := width("fit", "#zoom-fit")
	w1 := width("zoom in", "#zoom-in")
	w2 := width("zoom out", "#zoom-out")
	w3 := width("zoom out again", "#zoom-out")
	if math.Abs(w0-fit) > 2 || w1 <= w0 || math.Abs(w2-w0) > 2 || w3 >= w0 {
		t.Errorf("zoom widths: fit %.0f (of %.0f), in %.0f, out %.0f, out %.0f", w0, fit, w1, w2, w3)
	}
	// Sign from the document view: the PIN screen for this letter alone.
	run(t, bctx, "the letter read", chromedp.WaitVisible(`#doc-sign:not([disabled])`), chromedp.Click(`#doc-sign`),
		chromedp.WaitVisible(`#pin`), chromedp.Text(`#pin-letters`, &text))
	if !strings.Contains(text, "Untuk menandatangani 1 surat:") || !strings.Contains(text, a.Title) {
		t.Errorf("the PIN screen from the document view says %q", text)
	}
	run(t, bctx, "back to the document", chromedp.Click(`#pin-cancel`), chromedp.WaitVisible(`[data-state=document] #pages canvas[data-rendered]`),
		chromedp.Click(`#doc-close`), chromedp.WaitVisible(first+`input[type=checkbox]:not([disabled])`))

	// A signed PDF opens at its block's page, scrolled to the mark.
	run(t, bctx, "open the signed PDF", chromedp.Click(`[data-open="`+b.JobID+`/0"]`), chromedp.WaitVisible(`#block-mark`), chromedp.Text(`#page-label`, &label))
	if label != "Halaman 2 dari 2" {
		t.Errorf("the PAdES letter opens at %q, want its block's page", label)
	}
	sw.sweep("document-pades", append(docActions, "#block-mark"), func(size string) {
		var inside bool
		run(t, bctx, "the mark in the preview", chromedp.Evaluate(`(() => { const p = document.getElementById("pages").getBoundingClientRect(),
			m = document.getElementById("block-mark").getBoundingClientRect();
			return m.top >= p.top && m.bottom <= p.bottom && m.left >= p.left && m.right <= p.right; })()`, &inside))
		if !inside {
			t.Errorf("document-pades at %s: the block mark is not in view in the preview", size)
		}
	})
	run(t, bctx, "the signed PDF read", chromedp.WaitVisible(`#doc-sign:not([disabled])`), chromedp.Click(`#doc-close`))
	for _, j := range []*api.Job{c, d, e} {
		readLetter(t, bctx, j.JobID)
	}

	run(t, bctx, "reject screen", chromedp.Click(`[data-reject="`+e.JobID+`"]`), chromedp.WaitVisible(`#reject-reason`))
	sw.sweep("reject", []string{"#reject-reason", "#reject-cancel", "#reject-confirm"}, nil)
	run(t, bctx, "cancel the reject", chromedp.Click(`#reject-cancel`), chromedp.WaitVisible(`[data-state=token]`))

	actions := []chromedp.Action{}
	for _, j := range []*api.Job{a, b, c, d} {
		actions = append(actions, chromedp.Click(`[data-job="`+j.JobID+`"] input[type=checkbox]`))
	}
	run(t, bctx, "choose four letters", append(actions, chromedp.WaitVisible(`#sign:not([disabled])`))...)
	// The list is scrolled to the last letter chosen; the bar stays.
	sw.sweep("letters-chosen", []string{"#sign", "#select-all", "#lang", `[data-job="` + d.JobID + `"] input[type=checkbox]`}, nil)
	run(t, bctx, "four letters to the PIN screen", chromedp.Text(`#sign`, &label), chromedp.Click(`#sign`), chromedp.WaitVisible(`#pin`),
		chromedp.Text(`#pin-letters`, &text))
	if label != "Tanda tangani 4 surat" || !strings.Contains(text, "Untuk menandatangani 4 surat:") || !strings.Contains(text, "dan 1 surat lainnya") ||
		!strings.Contains(text, a.Title) || !strings.Contains(text, c.Title) {
		t.Errorf("sign button %q; the PIN screen names %q", label, text)
	}
	pinActions := []string{"#pin", "[data-key]", "#pin-back", "#pin-clear", "#pin-cancel", "#pin-submit", "#pin-letters"}
	sw.sweep("pin", pinActions, nil)
	run(t, bctx, "a wrong PIN", append(keypad("654321"), chromedp.Click(`#pin-submit`), chromedp.WaitVisible(`[data-error=err_wrong_pin]`),
		chromedp.Text(`main`, &text))...)
	if n := strings.Count(text, "Sisa percobaan"); n != 1 || !strings.Contains(text, "Sisa percobaan: 2") {
		t.Errorf("after a wrong PIN the tries left are said %d times: %q", n, text)
	}
	sw.sweep("pin-wrong", append(pinActions, "[data-error=err_wrong_pin]"), nil)
	run(t, bctx, "a second wrong PIN", append(keypad("654321"), chromedp.Click(`#pin-submit`), chromedp.WaitVisible(`#confirm-last`),
		chromedp.Text(`main`, &text))...)
	if n := strings.Count(text, "Sisa percobaan"); n != 1 || !strings.Contains(text, "Sisa percobaan: 1") || !strings.Contains(text, "percobaan terakhir") {
		t.Errorf("before the last try the PIN screen says %q", text)
	}
	sw.sweep("pin-last", append(pinActions, "[data-error=err_wrong_pin]", "#confirm-last"), nil)

	// The keypad by keyboard alone: Space ticks the last-try confirmation,
	// Tab goes to the field; digits and Backspace in the field, a digit and
	// Backspace on a focused key, Enter to sign.
	pinLen := func(n int) chromedp.Action {
		return chromedp.Poll(fmt.Sprintf(`document.getElementById("pin").value.length === %d && pin.length === %d`, n, n), nil)
	}
	run(t, bctx, "type on the keyboard", chromedp.Focus(`#confirm-last`), chromedp.KeyEvent(" "), chromedp.Poll(`document.getElementById("confirm-last").checked`, nil),
		chromedp.KeyEvent(kb.Tab), chromedp.Poll(`document.activeElement.id === "pin"`, nil), chromedp.KeyEvent("1234567"), pinLen(7),
		chromedp.KeyEvent(kb.Backspace), pinLen(6), chromedp.KeyEvent(kb.Backspace), pinLen(5),
		chromedp.KeyEvent(kb.Tab), chromedp.Poll(`document.activeElement.dataset.key === "1"`, nil),
		chromedp.KeyEvent("9"), pinLen(6), chromedp.KeyEvent(kb.Backspace), pinLen(5), chromedp.KeyEvent("6"), pinLen(6),
		chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(input.ModifierShift)), chromedp.Poll(`document.activeElement.id === "pin"`, nil))
	hold, release := siti.HoldSignature()
	run(t, bctx, "Enter signs", chromedp.KeyEvent(kb.Enter))
	select {
	case <-hold:
	case <-time.After(20 * time.Second):
		t.Fatal("Enter did not sign")
	}
	run(t, bctx, "signing screen", chromedp.WaitVisible(`[data-state=signing]`))
	sw.sweep("signing", []string{"[data-state=signing] h1", ".progress"}, nil)
	release()
	run(t, bctx, "done", chromedp.WaitVisible(`#done-signed`), chromedp.Text(`#done-signed`, &text))
	if text != "4 surat telah ditandatangani." {
		t.Errorf("done screen says %q", text)
	}
	sw.sweep("done", []string{"#done-back", "#lang"}, nil)
	siti.Card.OnCommand(nil)
	for range 4 {
		select {
		case r := <-tm.Results:
			if r.Outcome != api.OutcomeSigned {
				t.Fatalf("result %+v", r)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("results not received")
		}
	}

	// English: counted words by the English plural rules.
	run(t, bctx, "one letter left, in English", chromedp.Click(`#done-back`), chromedp.WaitVisible(`[data-job="`+e.JobID+`"]`),
		chromedp.Click(`#lang`), chromedp.WaitVisible(`#sign`), chromedp.Click(`[data-job="`+e.JobID+`"] input[type=checkbox]`),
		chromedp.Text(`main`, &text), chromedp.Text(`#sign`, &label))
	for _, want := range []string{"1 letter is waiting for your signature", "1 document", "Due: ", "From: "} {
		if !strings.Contains(text, want) {
			t.Errorf("the English list lacks %q: %q", want, text)
		}
	}
	if label != "Sign 1 letter" {
		t.Errorf("the English sign button says %q", label)
	}
}
