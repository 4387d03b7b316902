//go:build linux

package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/chromedp/chromedp"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
)

// TestPINMemoryAfterBatch signs a batch with a PIN made up at run time, then
// searches the whole memory of the test process — which is tekend, the
// simulated token and the page's client at once — for the PIN's bytes.
//
// Raw memory does not say who left a copy, so the test makes the count mean
// something in three ways:
//
//   - Nothing of the test itself holds the PIN: the PIN, the request and
//     the scan's read buffer live in one mmap'd region outside the Go heap,
//     which the scan leaves out; the request goes out through a bare
//     net.Conn (no http.Transport write buffer) and is wiped after the
//     write; the Official's PIN string aliases that region.
//   - Every hit is classified by the bytes around it: the request as
//     net/http's read buffer holds it (headers, blank line, then the body
//     whose first member is the PIN), the body alone, a JSON string, a PIV
//     VERIFY APDU (00 20 00 80 08 ‖ PIN), or bare bytes.
//   - The copies only code outside Teken's reach can hold are counted per
//     source, below, and the total must stay within their sum; the
//     contexts only Teken's kiosk can produce (a body without its request
//     head, a JSON string) must not appear at all.
//
// The kiosk's own buffers — the one it reads the request into and the PIN
// it hands the controller — are wiped before the handler returns, so they
// count for nothing. Copies that may remain, each garbage or a buffer
// another package owns and never wipes (the Go collector frees memory
// without zeroing it; a freed block keeps its bytes until it is reused, so
// each source below leaves its copy or not from run to run):
//
//   - net/http: the server connection's bufio.Reader (net/http/server.go,
//     conn.readRequest reads through c.bufr, from newBufioReader, 4 KiB,
//     pooled in bufioReaderPool without being cleared) holds the request as
//     it came off the socket, headers and body: one per connection that
//     carried a sign request, until later reads overwrite it.
//   - piv-go (github.com/go-piv/piv-go/v2 v2.6.0): for every VERIFY,
//     encodePIN (piv/piv.go) makes data := []byte(pin) padded to 8 bytes
//     (bare), and scTx.Transmit (piv/pcsc.go) builds req := make(5+len)
//     with the APDU header (VERIFY APDU); SCardTransmit (piv/pcsc_unix.go)
//     sends req straight to pcscd's socket. Neither is zeroed. The device
//     layer passes the PIN as a string aliasing the kiosk's buffer
//     (device/session.go pinString), so it adds no copy of its own.
//   - the simulated token, which a real terminal does not have in its
//     memory (a real token keeps the PIN inside the chip): its PIN
//     reference (device/pivsim/card.go Card.pin, kept for the card's life),
//     the []byte(cfg.PIN) that pivsim.New pads, and for every VERIFY the
//     message readMessage allocates (device/pivsim/vpcd.go) plus its
//     bufio.Reader, which holds the latest message until the next one.
//
// Bare hits cannot be told apart: besides the 8-byte buffers above, a run
// now and then shows one more amid pointers, most likely a stale goroutine
// stack frame of the VERIFY path; the total bound covers it.
//
// Measured on Go 1.26 (linux/amd64), 8 runs each: before the kiosk read the
// sign request into one buffer of its own, 10 to 15 copies, of them 3 to 7
// bodies alone (io.ReadAll's intermediate chunks and json.Decoder's
// buffer, never wiped); after, 7 to 9, no body alone.
func TestPINMemoryAfterBatch(t *testing.T) {
	// One region outside the Go heap for everything of the test's own that
	// holds the PIN; the scan skips it.
	const chunk = 1 << 20
	const pinLen = 8
	region, err := syscall.Mmap(-1, 0, chunk+64<<10, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	// Never unmapped: the Official's PIN string points into it.
	pin := region[:pinLen:pinLen]
	scratch := region[4096 : 64<<10 : 64<<10]
	readBuf := region[64<<10:]
	makeSentinelPIN(t, pin)

	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca)
	// NewOfficial keeps the PIN string; aliasing the region keeps it out of
	// the Go heap.
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", unsafe.String(&pin[0], pinLen), 7001)
	j1 := tm.Dispatch(siti, "Undangan Rapat", "005/1/SETDA/XI/2026")
	j2 := tm.Dispatch(siti, "Nota Dinas", "800/2/BKD/XI/2026")
	k := tm.Kiosk()
	if err := siti.Card.Insert(context.Background(), tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k.Await("two letters", func(v kiosk.View) bool { return v.State == kiosk.StateToken && v.CanSign && len(v.Jobs) == 2 })

	// First a page with stale letters: fourteen ids that name no waiting
	// letter, a body over 512 bytes. The kiosk takes the PIN out and the
	// controller refuses before the token is asked.
	var stale []string
	for range 14 {
		stale = append(stale, api.NewJobID())
	}
	if status := signOverBareConn(t, tm.KioskURL, stale, pin, scratch); status != http.StatusConflict {
		t.Fatalf("sign stale letters: status %d, want 409", status)
	}
	// Then the batch, once the page has opened both letters.
	if err := k.Read(j1.JobID, j2.JobID); err != nil {
		t.Fatal(err)
	}
	if status := signOverBareConn(t, tm.KioskURL, []string{j1.JobID, j2.JobID}, pin, scratch); status != http.StatusOK {
		t.Fatalf("sign: status %d\n%s", status, tm.Logs.Bytes())
	}
	k.Await("done", func(v kiosk.View) bool { return v.State == kiosk.StateDone && v.Result != nil && v.Result.Signed == 2 })
	for range 2 {
		select {
		case r := <-tm.Results:
			if r.Outcome != api.OutcomeSigned {
				t.Fatalf("result %+v", r)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("results not received")
		}
	}
	// Two connections carried a sign request; one VERIFY per signature
	// (the key's PIN policy is always), none for the stale letters.
	const connections, verifies = 2, 2

	runtime.GC()
	runtime.GC()
	hits := scanOwnMemory(t, pin, region, readBuf)

	byKind := map[hitKind]int{}
	for _, h := range hits {
		byKind[h.kind]++
		t.Logf("hit at %#x (%s): %s · % x · PIN · % x", h.addr, h.region, h.kind, h.before, h.after)
	}
	// The documented residue, per source (see the comment above).
	const (
		netHTTP        = connections      // each connection's read buffer
		pivGo          = 2 * verifies     // encodePIN's data and Transmit's req, per VERIFY
		simulatedToken = 2 + verifies + 1 // reference, New's []byte, a message per VERIFY, its bufio.Reader
		allowed        = netHTTP + pivGo + simulatedToken
		allowedAPDUs   = 2*verifies + 1 // piv-go's req and pivsim's message per VERIFY, pivsim's bufio.Reader
	)
	t.Logf("PIN copies in memory: %d (request %d, body %d, json string %d, VERIFY APDU %d, bare %d); allowed %d",
		len(hits), byKind[kindRequest], byKind[kindBody], byKind[kindJSONString], byKind[kindAPDU], byKind[kindBare], allowed)
	if n := byKind[kindBody] + byKind[kindJSONString]; n != 0 {
		t.Errorf("%d copies of the PIN in a shape only the kiosk's own parsing leaves (a body without its request, a JSON string)", n)
	}
	if n := byKind[kindRequest]; n > netHTTP {
		t.Errorf("%d copies of the whole request, want at most %d (net/http's read buffer per connection)", n, netHTTP)
	}
	if n := byKind[kindAPDU]; n > allowedAPDUs {
		t.Errorf("%d copies of the VERIFY APDU, want at most %d", n, allowedAPDUs)
	}
	if len(hits) > allowed {
		t.Errorf("%d copies of the PIN in memory, want at most %d (the residue of net/http, piv-go and the simulated token)", len(hits), allowed)
	}
}

// makeSentinelPIN fills pin with 8 letters and digits from crypto/rand, so no
// constant in the binary holds them.
func makeSentinelPIN(t *testing.T, pin []byte) {
	t.Helper()
	if _, err := rand.Read(pin); err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
	for i := range pin {
		pin[i] = alphabet[int(pin[i])%len(alphabet)]
	}
	// A digit and a letter, as a real PIN policy would want.
	pin[0] = alphabet[int(pin[0])%24]
	pin[pinIndexDigit] = alphabet[len(alphabet)-1-int(pin[pinIndexDigit])%8]
}

const pinIndexDigit = 5

// signOverBareConn posts a sign request as the page does, but writes it
// with one syscall from scratch, which it wipes, so that no client-side
// buffer keeps the PIN. It returns the HTTP status.
func signOverBareConn(t *testing.T, base string, ids []string, pin, scratch []byte) int {
	t.Helper()
	csrf := csrfToken(t, base)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	// The body puts the PIN first, so that the bytes before it tell a
	// buffer holding the request (headers, a blank line, {"pin":") from
	// one holding the body alone.
	body := scratch[:0]
	body = append(body, `{"pin":"`...)
	body = append(body, pin...)
	body = append(body, `","job_ids":[`...)
	for i, id := range ids {
		if i > 0 {
			body = append(body, ',')
		}
		body = strconv.AppendQuote(body, id)
	}
	body = append(body, `],"confirm_last_attempt":false}`...)
	head := fmt.Sprintf("POST /api/sign HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\nContent-Type: application/json\r\nX-Teken-CSRF: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		u.Host, base, csrf, len(body))
	req := scratch[len(body):len(body)]
	req = append(req, head...)
	req = append(req, body...)
	if &req[0] != &scratch[len(body)] {
		t.Fatal("request outgrew the scratch region")
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = conn.Write(req)
	clear(scratch)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Logf("sign answer: %s", b)
	}
	return res.StatusCode
}

func csrfToken(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	page, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token in the page")
	}
	return string(m[1])
}

type hitKind string

const (
	kindRequest    hitKind = "request in a read buffer" // …\r\n\r\n{"pin":" PIN
	kindBody       hitKind = "body alone"               // {"pin":" PIN, not after a request head
	kindJSONString hitKind = "JSON string"              // " PIN "
	kindAPDU       hitKind = "VERIFY APDU"              // 00 20 00 80 08 PIN
	kindBare       hitKind = "bare"
)

type hit struct {
	addr          uintptr
	region        string
	kind          hitKind
	before, after []byte
}

// scanOwnMemory reads every private writable mapping of the process through
// /proc/self/mem and returns each place that holds needle. skip, the
// region that holds the needle and buf (the read buffer), is left out.
func scanOwnMemory(t *testing.T, needle, skip, buf []byte) []hit {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Skipf("no /proc/self/mem: %v", err)
	}
	defer mem.Close()
	skipLo := uintptr(unsafe.Pointer(unsafe.SliceData(skip)))
	skipHi := skipLo + uintptr(len(skip))
	var hits []hit
	var scanned, regions, unreadable int
	for line := range strings.Lines(string(maps)) {
		f := strings.Fields(line)
		if len(f) < 5 || f[1] != "rw-p" {
			continue
		}
		lo, hi, ok := parseRange(f[0])
		if !ok {
			continue
		}
		name := fmt.Sprintf("anonymous %s", f[0])
		if len(f) >= 6 {
			name = f[5]
		}
		regions++
		// The skipped region may be merged with a neighbour in one line.
		var parts [][2]uintptr
		if skipLo < hi && skipHi > lo {
			if lo < skipLo {
				parts = append(parts, [2]uintptr{lo, skipLo})
			}
			if skipHi < hi {
				parts = append(parts, [2]uintptr{skipHi, hi})
			}
		} else {
			parts = append(parts, [2]uintptr{lo, hi})
		}
		for _, p := range parts {
			n, hs, err := scanRange(mem, p[0], p[1], needle, buf)
			scanned += n
			if err != nil {
				unreadable++
			}
			for _, h := range hs {
				h.region = name
				hits = append(hits, h)
			}
		}
	}
	t.Logf("scanned %d MiB in %d rw-p mappings (%d partly unreadable)", scanned>>20, regions, unreadable)
	if scanned == 0 {
		t.Fatal("read nothing of the process's memory")
	}
	// Context last, so that the reads above do not move while it is taken.
	for i := range hits {
		classify(mem, &hits[i], needle, buf)
	}
	return hits
}

func parseRange(s string) (lo, hi uintptr, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	x, err1 := strconv.ParseUint(a, 16, 64)
	y, err2 := strconv.ParseUint(b, 16, 64)
	return uintptr(x), uintptr(y), err1 == nil && err2 == nil
}

// scanRange searches [lo, hi) in chunks of len(buf), each read with an
// overlap of len(needle)-1 so that no copy across a boundary is missed or
// counted twice.
func scanRange(mem *os.File, lo, hi uintptr, needle, buf []byte) (int, []hit, error) {
	var hits []hit
	step := uintptr(len(buf) - len(needle) + 1)
	read := 0
	for pos := lo; pos < hi; pos += step {
		end := min(pos+uintptr(len(buf)), hi)
		b := buf[:end-pos]
		n, err := mem.ReadAt(b, int64(pos))
		if err != nil && n == 0 {
			clear(buf)
			return read, hits, err
		}
		b = b[:n]
		read += n
		for off := 0; ; {
			i := bytes.Index(b[off:], needle)
			if i < 0 {
				break
			}
			at := off + i
			if uintptr(at) < step || end == hi {
				hits = append(hits, hit{addr: pos + uintptr(at)})
			}
			off = at + 1
		}
		if end == hi {
			break
		}
	}
	clear(buf)
	return read, hits, nil
}

// classify reads the bytes around a hit and names what holds it.
func classify(mem *os.File, h *hit, needle, buf []byte) {
	const before, after = 16, 4
	b := buf[:before+len(needle)+after]
	n, _ := mem.ReadAt(b, int64(h.addr-before))
	if n < before+len(needle) {
		h.kind = kindBare
		return
	}
	pre, post := bytes.Clone(b[:before]), bytes.Clone(b[before+len(needle):n])
	clear(buf[:len(b)])
	h.before, h.after = pre, post
	switch {
	case bytes.HasSuffix(pre, []byte("\r\n\r\n{\"pin\":\"")):
		h.kind = kindRequest
	case bytes.HasSuffix(pre, []byte("{\"pin\":\"")):
		h.kind = kindBody
	case bytes.HasSuffix(pre, []byte(`"`)) && bytes.HasPrefix(post, []byte(`"`)):
		h.kind = kindJSONString
	case bytes.HasSuffix(pre, []byte{0x00, 0x20, 0x00, 0x80, byte(len(needle))}):
		h.kind = kindAPDU
	default:
		h.kind = kindBare
	}
}

// The kiosk repeats the wire limit of a Result's detail, since it imports
// the standard library only; the two must not drift apart.
func TestKioskReasonLimitIsTheWireLimit(t *testing.T) {
	if kiosk.DefaultMaxReasonLen != api.MaxDetailLen {
		t.Fatalf("kiosk.DefaultMaxReasonLen = %d, api.MaxDetailLen = %d", kiosk.DefaultMaxReasonLen, api.MaxDetailLen)
	}
}

// A reason typed on several lines reaches the central side with LF line
// breaks; one the Result cannot carry is refused with 400 and its code, and
// the letter waits.
func TestKioskMultiLineRejectReachesCentral(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 7101)
	j := tm.Dispatch(siti, "Surat Edaran Libur Nasional", "003/789/SETDA/XI/2026")
	k := tm.Kiosk()
	if err := siti.Card.Insert(context.Background(), tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k.Await("the letter", func(v kiosk.View) bool { return v.State == kiosk.StateToken && len(v.Jobs) == 1 })

	for _, tc := range []struct{ reason, code string }{
		{"Tanggal salah\u202e", kiosk.CodeReasonInvalid},
		{"Tanggal\u2028salah", kiosk.CodeReasonInvalid},
		{strings.Repeat("x", api.MaxDetailLen+1), kiosk.CodeReasonTooLong},
	} {
		if code, out := k.Post("/api/reject", map[string]any{"job_id": j.JobID, "reason": tc.reason}); code != http.StatusBadRequest || tekentest.ErrorCode(out) != tc.code {
			t.Fatalf("reject with %q: %d %v, want 400 %s", tc.reason, code, out, tc.code)
		}
	}
	// A page opened now gets the latest view: the letter still waits.
	tm.Kiosk().Await("the letter still waiting", func(v kiosk.View) bool { return v.State == kiosk.StateToken && len(v.Jobs) == 1 })

	typed := "Tanggal surat salah.\r\nNomor surat juga salah.\r\n\r\nMohon diperbaiki.\r\n"
	if code, out := k.Post("/api/reject", map[string]any{"job_id": j.JobID, "reason": typed}); code != http.StatusOK {
		t.Fatalf("reject on several lines: %d %v", code, out)
	}
	select {
	case r := <-tm.Results:
		want := "Tanggal surat salah.\nNomor surat juga salah.\n\nMohon diperbaiki."
		if r.JobID != j.JobID || r.Outcome != api.OutcomeRejected || r.Detail != want {
			t.Fatalf("result %+v, want detail %q", r, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no result\n%s", tm.Logs.Bytes())
	}
}

// The reject screen in a real browser takes a reason on several lines, keeps
// it while the terminal pushes a new view, shows a refusal with its text,
// and the reason reaches the central side with LF line breaks.
func TestKioskMultiLineRejectInChromium(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca)
	bctx := startBrowser(t)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 7201)
	j := tm.Dispatch(siti, "Surat Edaran Libur Nasional", "003/789/SETDA/XI/2026")
	run(t, bctx, "open the kiosk", chromedp.Navigate(tm.KioskURL), chromedp.WaitVisible(`[data-state=idle]`))
	if err := siti.Card.Insert(context.Background(), tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	run(t, bctx, "open the reject screen", chromedp.WaitVisible(`[data-reject="`+j.JobID+`"]`),
		chromedp.Click(`[data-reject="`+j.JobID+`"]`), chromedp.WaitVisible(`#reject-reason`))

	// A character the Result cannot carry (pasted: no key types it):
	// refused, the screen stays.
	var text string
	run(t, bctx, "refused reason", chromedp.SetValue(`#reject-reason`, "Tanggal\u202esalah"), chromedp.Click(`#reject-confirm`),
		chromedp.WaitVisible(`[data-error=err_reason_invalid]`), chromedp.Text(`[data-error=err_reason_invalid]`, &text))
	if !strings.Contains(text, "karakter") {
		t.Fatalf("refusal says %q", text)
	}
	var value string
	run(t, bctx, "refused text kept", chromedp.Value(`#reject-reason`, &value))
	if value != "Tanggal\u202esalah" {
		t.Fatalf("after the refusal the textarea holds %q", value)
	}

	// Several lines; a letter that arrives meanwhile pushes a new view,
	// which must not wipe what was typed.
	run(t, bctx, "type on several lines", chromedp.Evaluate(`document.getElementById("reject-reason").value = ""`, nil),
		chromedp.SendKeys(`#reject-reason`, "Tanggal surat salah.\nNomor surat juga salah."))
	tm.Dispatch(siti, "Nota Dinas", "800/2/BKD/XI/2026")
	time.Sleep(500 * time.Millisecond) // the view reaches the page
	run(t, bctx, "typed text kept", chromedp.Value(`#reject-reason`, &value))
	if value != "Tanggal surat salah.\nNomor surat juga salah." {
		t.Fatalf("textarea holds %q after a new view", value)
	}
	run(t, bctx, "reject", chromedp.SendKeys(`#reject-reason`, "\n\nMohon diperbaiki.\n"), chromedp.Click(`#reject-confirm`),
		chromedp.WaitVisible(`[data-state=token]`))
	select {
	case r := <-tm.Results:
		want := "Tanggal surat salah.\nNomor surat juga salah.\n\nMohon diperbaiki."
		if r.JobID != j.JobID || r.Outcome != api.OutcomeRejected || r.Detail != want {
			t.Fatalf("result %+v, want detail %q", r, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no result\n%s", tm.Logs.Bytes())
	}
}
