package daemon_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

var updateDocs = flag.Bool("update-docs", false, "copy the kiosk screenshots used by the README into docs/img")

// artifactsDir keeps the screenshots of a browser run for people to look at.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("TEKEN_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	dir = filepath.Join(dir, "kiosk")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pageLog is what the page said on its console and what it threw, for a
// failing test's report.
type pageLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *pageLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < 200 {
		l.lines = append(l.lines, s)
	}
}

func (l *pageLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

var pageLogs sync.Map // browser context → *pageLog

// startBrowser starts headless Chromium for one test. An exception the page
// does not catch fails the test.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := testenv.LookPath(t, "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	log := &pageLog{}
	var thrown []string
	var mu sync.Mutex
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			log.add("exception: " + msg)
			mu.Lock()
			thrown = append(thrown, msg)
			mu.Unlock()
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				if a.Description != "" {
					args = append(args, a.Description)
				} else {
					args = append(args, string(a.Value))
				}
			}
			log.add(string(ev.Type) + ": " + strings.Join(args, " "))
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		testenv.Unavailable(t, "start chromium: %v", err)
	}
	pageLogs.Store(ctx, log)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range thrown {
			t.Errorf("the page threw: %s", e)
		}
	})
	return ctx
}

type shooter struct {
	t   *testing.T
	ctx context.Context
	dir string
}

// shot keeps what the window shows as name.png.
func (s shooter) shot(name string) {
	s.t.Helper()
	var png []byte
	if err := chromedp.Run(s.ctx, chromedp.CaptureScreenshot(&png)); err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, name+".png"), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// run runs browser actions with a bound, so a missing element fails the test
// instead of hanging it.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	runFor(t, ctx, 20*time.Second, what, actions...)
}

func runFor(t *testing.T, ctx context.Context, bound time.Duration, what string, actions ...chromedp.Action) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if err := chromedp.Run(c, actions...); err != nil {
		var png []byte
		var html string
		_ = chromedp.Run(ctx, chromedp.CaptureScreenshot(&png), chromedp.OuterHTML("main", &html))
		_ = os.WriteFile(filepath.Join(artifactsDir(t), "failure.png"), png, 0o644)
		console := ""
		if l, ok := pageLogs.Load(ctx); ok {
			console = l.(*pageLog).String()
		}
		t.Fatalf("%s: %v\npage: %s\nconsole:\n%s", what, err, html, console)
	}
}

// readLetter opens each document of a letter in the page, as the official
// does before signing it, and comes back to the list once the letter may
// be chosen.
func readLetter(t *testing.T, ctx context.Context, jobID string) {
	t.Helper()
	run(t, ctx, "read letter "+jobID,
		chromedp.WaitVisible(`[data-job="`+jobID+`"] [data-open]`), chromedp.Click(`[data-job="`+jobID+`"] [data-open]`),
		chromedp.WaitVisible(`[data-state=document] [data-rendered]`),
		chromedp.Poll(`!document.getElementById("doc-sign").disabled`, nil),
		chromedp.Click(`#doc-close`), chromedp.WaitVisible(`[data-job="`+jobID+`"][data-status=ready]`))
}

// keypad types a PIN on the on-screen keypad.
func keypad(pin string) []chromedp.Action {
	var actions []chromedp.Action
	for _, d := range pin {
		actions = append(actions, chromedp.Click(`[data-key="`+string(d)+`"]`))
	}
	return actions
}

// The official's whole flow in a real browser against a real tekend, a real
// broker and a software token through pcscd.
func TestKioskInChromium(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca)
	bctx := startBrowser(t)
	siti := ca.NewOfficial(t, "Dr. Siti Rahmawati, M.Si.", "198703152010012003", "123456", 4001)
	budi := ca.NewOfficial(t, "Budi Santoso, S.H.", "197501012000031001", "123456", 4002)
	j1 := tm.Dispatch(siti, "Undangan Rapat Koordinasi Penyusunan APBD 2027", "005/1234/SETDA/XI/2026")
	j2 := tm.Dispatch(siti, "Nota Dinas Penyesuaian Jam Pelayanan Publik", "800/567/BKD/XI/2026")
	jb := tm.Dispatch(budi, "Disposisi Kepala Bidang", "090/111/SETDA/XI/2026")
	s := shooter{t: t, ctx: bctx, dir: artifactsDir(t)}

	run(t, bctx, "open the kiosk", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(tm.KioskURL), chromedp.WaitVisible(`[data-state=idle]`))
	var text string
	run(t, bctx, "idle text", chromedp.Text(`main`, &text))
	if !strings.Contains(text, "Tempelkan token Anda") {
		t.Fatalf("idle page says %q", text)
	}

	ctx := context.Background()
	if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	var nodes int
	var pickable bool
	run(t, bctx, "letter list", chromedp.WaitVisible(`[data-job="`+j2.JobID+`"]`), chromedp.WaitVisible(`[data-job="`+j1.JobID+`"]`),
		chromedp.Evaluate(`document.querySelectorAll('.letter').length`, &nodes), chromedp.Text(`main`, &text),
		chromedp.Evaluate(`!document.querySelector('[data-job="`+j1.JobID+`"] input[type=checkbox]').disabled`, &pickable))
	if nodes != 2 || strings.Contains(text, "Disposisi") {
		t.Fatalf("Siti sees %d letters: %q", nodes, text)
	}
	if pickable || !strings.Contains(text, "Buka setiap dokumen terlebih dahulu") {
		t.Fatalf("a letter not opened yet can be chosen (%v), or the list does not say to open it first: %q", pickable, text)
	}
	var budiShown bool
	run(t, bctx, "other signer hidden", chromedp.Evaluate(`!!document.querySelector('[data-job="`+jb.JobID+`"]')`, &budiShown))
	if budiShown {
		t.Fatal("Budi's letter is on Siti's page")
	}

	readLetter(t, bctx, j1.JobID)
	readLetter(t, bctx, j2.JobID)

	// Select both, then a wrong PIN: the page says so with the tries left.
	run(t, bctx, "select and open the PIN pad",
		chromedp.Click(`[data-job="`+j1.JobID+`"] input[type=checkbox]`),
		chromedp.Click(`[data-job="`+j2.JobID+`"] input[type=checkbox]`),
		chromedp.WaitVisible(`#sign:not([disabled])`), chromedp.Text(`#sign`, &text),
		chromedp.Click(`#sign`), chromedp.WaitVisible(`#pin`))
	if text != "Tanda tangani 2 surat" {
		t.Fatalf("the sign button says %q", text)
	}
	run(t, bctx, "wrong PIN",
		chromedp.SendKeys(`#pin`, "654321"), chromedp.Click(`#pin-submit`),
		chromedp.WaitVisible(`[data-error=err_wrong_pin]`), chromedp.Text(`[data-error=err_wrong_pin]`, &text))
	if !strings.Contains(text, "Sisa percobaan: 2") {
		t.Fatalf("wrong PIN message %q", text)
	}

	// The right PIN on the on-screen keypad; the card holds the first
	// signature long enough to see the progress screen.
	hold, release := siti.HoldSignature()
	run(t, bctx, "keypad PIN", append(keypad("123456"), chromedp.Click(`#pin-submit`))...)
	<-hold
	run(t, bctx, "signing screen", chromedp.WaitVisible(`[data-state=signing]`))
	release()
	run(t, bctx, "done", chromedp.WaitVisible(`#done-signed`), chromedp.Text(`#done-signed`, &text))
	if !strings.Contains(text, "2 surat") {
		t.Fatalf("done screen says %q", text)
	}
	siti.Card.OnCommand(nil)
	for range 2 {
		select {
		case r := <-tm.Results:
			doc := j1.Documents[0].Content
			if r.JobID == j2.JobID {
				doc = j2.Documents[0].Content
			}
			if r.Outcome != api.OutcomeSigned {
				t.Fatalf("result %+v", r)
			}
			verifyWithOpenSSL(t, ca, r.Documents[0].Signature, doc)
		case <-time.After(30 * time.Second):
			t.Fatal("results not received")
		}
	}

	// English is one tap away.
	run(t, bctx, "back and switch language", chromedp.Click(`#done-back`), chromedp.WaitVisible(`[data-state=token]`),
		chromedp.Click(`#lang`), chromedp.WaitVisible(`#waiting`), chromedp.Text(`#waiting`, &text))
	if !strings.Contains(text, "No letters are waiting") {
		t.Fatalf("English list says %q", text)
	}

	// A reject, with a reason.
	j3 := tm.Dispatch(siti, "Surat Edaran Libur Nasional", "003/789/SETDA/XI/2026")
	run(t, bctx, "reject", chromedp.WaitVisible(`[data-reject="`+j3.JobID+`"]`), chromedp.Click(`[data-reject="`+j3.JobID+`"]`),
		chromedp.WaitVisible(`#reject-reason`), chromedp.SendKeys(`#reject-reason`, "Tanggal salah"), chromedp.Click(`#reject-confirm`))
	select {
	case r := <-tm.Results:
		if r.JobID != j3.JobID || r.Outcome != api.OutcomeRejected || r.Detail != "Tanggal salah" {
			t.Fatalf("reject result %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("rejection not received")
	}

	// The token leaves in the middle of a batch of two: one is signed, the
	// other waits, and the page says what happened.
	j4 := tm.Dispatch(siti, "Surat Tugas A", "094/001/SETDA/XI/2026")
	j5 := tm.Dispatch(siti, "Surat Tugas B", "094/002/SETDA/XI/2026")
	readLetter(t, bctx, j4.JobID)
	readLetter(t, bctx, j5.JobID)
	siti.RemoveOnSignature(2)
	run(t, bctx, "batch with removal",
		chromedp.Click(`[data-job="`+j4.JobID+`"] input[type=checkbox]`),
		chromedp.Click(`[data-job="`+j5.JobID+`"] input[type=checkbox]`),
		chromedp.Text(`#sign`, &text),
		chromedp.Click(`#sign`), chromedp.WaitVisible(`#pin`),
		chromedp.SendKeys(`#pin`, "123456"), chromedp.Click(`#pin-submit`),
		chromedp.WaitVisible(`[data-error=err_token_removed]`))
	if text != "Sign 2 letters" {
		t.Fatalf("the English sign button says %q", text)
	}
	s.shot("token-removed-1280x800")
	select {
	case r := <-tm.Results:
		if r.Outcome != api.OutcomeSigned {
			t.Fatalf("result %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the letter signed before the removal was not delivered")
	}
}

// An open page goes on across a tekend restart, without a reload: it shows
// the letters again and signs, with the token the new tekend gave it. An
// action sent with an old token is refused with a plain request to try
// again, and the next try works.
func TestKioskSurvivesTekendRestartInChromium(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	// The page must find the new tekend where the old one was.
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	var cfg daemon.Config
	tm := tekentest.Start(t, ca, func(c *daemon.Config) {
		c.Kiosk.Listen = addr
		cfg = *c
	})
	bctx := startBrowser(t)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 7301)
	j1 := tm.Dispatch(siti, "Undangan Rapat Koordinasi", "005/1/SETDA/XI/2026")
	j2 := tm.Dispatch(siti, "Nota Dinas Jam Pelayanan", "800/2/BKD/XI/2026")
	run(t, bctx, "open the kiosk", chromedp.Navigate(tm.KioskURL), chromedp.WaitVisible(`[data-state=idle]`))
	if err := siti.Card.Insert(context.Background(), tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	var oldToken, oldBoot string
	run(t, bctx, "the letters", chromedp.WaitVisible(`[data-job="`+j1.JobID+`"]`), chromedp.WaitVisible(`[data-job="`+j2.JobID+`"]`),
		chromedp.Evaluate(`csrf`, &oldToken), chromedp.Evaluate(`boot`, &oldBoot))

	tm.Stop()
	run(t, bctx, "tekend gone", chromedp.WaitVisible(`#offline`))
	kioskURL, _, _ := tekentest.RunTekend(t, cfg, tm.Logs)
	if kioskURL != tm.KioskURL {
		t.Fatalf("the new tekend serves %s, the page is at %s", kioskURL, tm.KioskURL)
	}
	run(t, bctx, "the letters again, with the new token",
		chromedp.WaitVisible(`[data-job="`+j1.JobID+`"]`), chromedp.WaitNotVisible(`#offline`),
		chromedp.Poll(fmt.Sprintf(`csrf !== %q && boot === view.boot && boot !== %q`, oldToken, oldBoot), nil))

	sign := func(what string, jobID string) {
		t.Helper()
		readLetter(t, bctx, jobID)
		actions := []chromedp.Action{chromedp.Click(`[data-job="` + jobID + `"] input[type=checkbox]`), chromedp.Click(`#sign`), chromedp.WaitVisible(`#pin`)}
		run(t, bctx, what, append(append(actions, keypad("123456")...), chromedp.Click(`#pin-submit`))...)
	}
	awaitSigned := func(jobID string) {
		t.Helper()
		select {
		case r := <-tm.Results:
			if r.JobID != jobID || r.Outcome != api.OutcomeSigned {
				t.Fatalf("result %+v, want %s signed", r, jobID)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no result for %s\n%s", jobID, tm.Logs.Bytes())
		}
	}
	sign("sign after the restart", j1.JobID)
	run(t, bctx, "signed after the restart", chromedp.WaitVisible(`#done-signed`))
	awaitSigned(j1.JobID)

	// A page that missed the new boot still holds an old token: the
	// action is refused with a request to try again, the page fetches
	// the token, and the second try signs.
	run(t, bctx, "back to the list", chromedp.Click(`#done-back`), chromedp.WaitVisible(`[data-state=token]`),
		chromedp.Evaluate(`csrf = "token-of-an-earlier-tekend"`, nil))
	var text string
	sign("sign with an old token", j2.JobID)
	run(t, bctx, "asked to try again", chromedp.WaitVisible(`#pin`), chromedp.WaitVisible(`[data-error=err_session_stale]`),
		chromedp.Text(`[data-error=err_session_stale]`, &text),
		chromedp.Poll(`csrf !== "token-of-an-earlier-tekend"`, nil))
	if !strings.Contains(text, "coba lagi") {
		t.Fatalf("the refusal says %q", text)
	}
	s := shooter{t: t, ctx: bctx, dir: artifactsDir(t)}
	s.shot("try-again-after-restart")
	run(t, bctx, "the second try", append(keypad("123456"), chromedp.Click(`#pin-submit`), chromedp.WaitVisible(`#done-signed`))...)
	awaitSigned(j2.JobID)
}
