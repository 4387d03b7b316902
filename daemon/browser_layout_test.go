package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/tekenid/teken/internal/tekentest"
)

// kioskSizes are the screens provinces buy for their terminals, and a
// portrait one.
var kioskSizes = []struct{ w, h int64 }{{1024, 768}, {1280, 800}, {1366, 768}, {1920, 1080}, {800, 1280}}

// docShots are the screenshots the README shows, kept in docs/img by
// -update-docs: artifact name → docs/img name.
var docShots = map[string]string{
	"letters-chosen-1366x768":        "kiosk-token-list",
	"pin-wrong-1024x768":             "kiosk-pin-entry",
	"document-pades-1280x800":        "kiosk-pades-preview",
	"document-800x1280":              "kiosk-document-portrait",
	"document-unrenderable-1024x768": "kiosk-document-refused",
}

// sweeper checks one screen of the page at every kiosk size: each of its
// actions inside the window and not covered, the page itself unscrolled,
// the text of touch targets large enough, axe-core without a critical or
// serious violation; and keeps a screenshot per size.
type sweeper struct {
	t   *testing.T
	ctx context.Context
	dir string
	axe string
}

func newSweeper(t *testing.T, ctx context.Context) *sweeper {
	src, err := os.ReadFile(filepath.Join("testdata", "axe", "axe.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	return &sweeper{t: t, ctx: ctx, dir: artifactsDir(t), axe: string(src)}
}

// settled is true once the window has its new size and the document view,
// if open, has drawn for it.
const settled = `(() => {
	const p = document.getElementById("pages");
	if (!p || document.querySelector("[data-state=document][data-failed]")) return true;
	return !p.hasAttribute("data-rendering") && p.dataset.forWidth === String(p.clientWidth);
})()`

// layoutProblems lists what is wrong with the layout for the selectors
// given: each must match, and each match must lie inside the window with
// its middle not covered by another element; the document must not be
// scrolled nor wider than the window; touch targets have text of 18 px or
// more and are at least 44 px each way.
const layoutProblems = `((sels) => {
	const out = [];
	const se = document.scrollingElement;
	if (se.scrollTop !== 0 || se.scrollLeft !== 0) out.push("the document is scrolled");
	if (se.scrollHeight > innerHeight || se.scrollWidth > innerWidth) out.push("the document is " + se.scrollWidth + "×" + se.scrollHeight);
	const name = (e) => e ? e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className.split(" ").join(".") : "") : "nothing";
	for (const s of sels) {
		const els = document.querySelectorAll(s);
		if (!els.length) { out.push(s + ": not on the screen"); continue; }
		for (const e of els) {
			const r = e.getBoundingClientRect();
			if (r.width < 1 || r.height < 1) { out.push(s + ": not shown"); continue; }
			if (r.left < 0 || r.top < 0 || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5) {
				out.push(s + ": at " + [r.left, r.top, r.right, r.bottom].map(Math.round).join(",") + ", outside the window " + innerWidth + "×" + innerHeight);
				continue;
			}
			const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
			if (!hit || !(hit === e || e.contains(hit) || hit.contains(e))) out.push(s + ": covered by " + name(hit));
		}
	}
	for (const e of document.querySelectorAll("button, input, textarea, select, label, a[href], [role=button]")) {
		const r = e.getBoundingClientRect();
		if (r.width < 1 || r.height < 1 || r.bottom < 0 || r.top > innerHeight) continue;
		const fs = parseFloat(getComputedStyle(e).fontSize);
		if (fs < 18 && e.type !== "checkbox") out.push(name(e) + ": text of " + fs + " px");
		if ((e.tagName === "BUTTON" || e.type === "checkbox") && (r.width < 44 || r.height < 44)) out.push(name(e) + ": " + Math.round(r.width) + "×" + Math.round(r.height) + " px to touch");
	}
	return out;
})`

// axeRun runs axe-core on the whole page and returns its critical and
// serious violations, and how many rules passed.
const axeRun = `axe.run(document, { resultTypes: ["violations"] }).then((r) => ({
	passes: r.passes.length,
	violations: r.violations.filter((v) => v.impact === "critical" || v.impact === "serious").map((v) =>
		v.id + " (" + v.impact + "): " + v.help + " — " + v.nodes.slice(0, 4).map((n) => n.target.join(" ") + " " + (n.failureSummary || "").replace(/\s+/g, " ")).join("; ")),
	minor: r.violations.filter((v) => v.impact !== "critical" && v.impact !== "serious").map((v) => v.id + " (" + v.impact + ")"),
}))`

type axeResult struct {
	Passes     int      `json:"passes"`
	Violations []string `json:"violations"`
	Minor      []string `json:"minor"`
}

func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

// resize gives the window the size and waits until the page has laid
// itself out (and drawn its document) for it.
func (s *sweeper) resize(w, h int64) {
	s.t.Helper()
	run(s.t, s.ctx, fmt.Sprintf("resize to %dx%d", w, h), chromedp.EmulateViewport(w, h),
		chromedp.Poll(fmt.Sprintf(`innerWidth === %d && innerHeight === %d`, w, h), nil),
		chromedp.Poll(settled, nil),
		chromedp.Evaluate(`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, nil, awaitPromise))
}

// sweep checks the screen at every size, and leaves the window at the
// first size. check, when not nil, runs at each size after the layout
// checks.
func (s *sweeper) sweep(screen string, selectors []string, check func(size string)) {
	s.t.Helper()
	sels, _ := json.Marshal(selectors)
	for _, sz := range kioskSizes {
		size := fmt.Sprintf("%dx%d", sz.w, sz.h)
		s.resize(sz.w, sz.h)
		var problems []string
		run(s.t, s.ctx, screen+" layout at "+size, chromedp.Evaluate(layoutProblems+`(`+string(sels)+`)`, &problems))
		for _, p := range problems {
			s.t.Errorf("%s at %s: %s", screen, size, p)
		}
		var res axeResult
		var loaded bool
		run(s.t, s.ctx, "axe loaded", chromedp.Evaluate(`typeof axe !== "undefined"`, &loaded))
		if !loaded {
			run(s.t, s.ctx, "load axe", chromedp.Evaluate(s.axe, nil))
		}
		run(s.t, s.ctx, screen+" axe at "+size, chromedp.Evaluate(axeRun, &res, awaitPromise))
		for _, v := range res.Violations {
			s.t.Errorf("%s at %s: axe: %s", screen, size, v)
		}
		if sz == kioskSizes[0] {
			s.t.Logf("%s: axe passed %d rules; %d critical or serious violations; minor: %v", screen, res.Passes, len(res.Violations), res.Minor)
		}
		if check != nil {
			check(size)
		}
		name := screen + "-" + size
		shooter{t: s.t, ctx: s.ctx, dir: s.dir}.shot(name)
		if doc, ok := docShots[name]; ok && *updateDocs {
			b, err := os.ReadFile(filepath.Join(s.dir, name+".png"))
			if err == nil {
				err = os.WriteFile(filepath.Join("..", "docs", "img", doc+".png"), b, 0o644)
			}
			if err != nil {
				s.t.Fatal(err)
			}
		}
	}
	s.resize(kioskSizes[0].w, kioskSizes[0].h)
}

// The idle screen says what /readyz says: with the card service down it asks
// for no tap and says why; offline it still asks for a tap and says that
// letters and results wait. Each fits every kiosk screen.
func TestKioskShowsPartsInChromium(t *testing.T) {
	tm := tekentest.Start(t, nil)
	bctx := startBrowser(t)
	sw := newSweeper(t, bctx)
	var text string
	run(t, bctx, "open the kiosk", chromedp.EmulateViewport(1024, 768), chromedp.Navigate(tm.KioskURL),
		chromedp.WaitVisible(`[data-state=idle] .tap`), chromedp.Text(`main`, &text))
	if !strings.Contains(text, "Tempelkan token Anda") {
		t.Fatalf("idle page says %q", text)
	}

	tm.PCSCD.Kill()
	run(t, bctx, "card service down", chromedp.WaitVisible(`[data-state=idle][data-unavailable] [role=alert] [data-part=err_pcscd]`),
		chromedp.Text(`main`, &text))
	if !strings.Contains(text, "Layanan kartu pintar tidak berjalan") || strings.Contains(text, "Tempelkan token Anda") {
		t.Fatalf("with pcscd down the idle page says %q", text)
	}
	sw.sweep("idle-unavailable", []string{"#lang", "#parts"}, nil)
	if err := tm.PCSCD.Restart(); err != nil {
		t.Fatal(err)
	}
	run(t, bctx, "card service back", chromedp.WaitVisible(`[data-state=idle] .tap`), chromedp.WaitNotPresent(`#parts`))

	tm.Broker.Stop()
	run(t, bctx, "offline", chromedp.WaitVisible(`[data-state=idle] [role=status] [data-part=info_offline]`),
		chromedp.Text(`main`, &text))
	if !strings.Contains(text, "Tempelkan token Anda") || !strings.Contains(text, "tidak tersambung ke sistem pusat") {
		t.Fatalf("offline the idle page says %q", text)
	}
	sw.sweep("idle-offline", []string{"#lang", "#parts"}, nil)
	if err := tm.Broker.Restart(); err != nil {
		t.Fatal(err)
	}
	run(t, bctx, "back online", chromedp.WaitNotPresent(`#parts`))
}
