package daemon

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"

	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
)

// page is the official's side of the terminal as a value: which token is
// present, what the page shows, and whether an action is in flight. Its
// methods are the transitions of the page's state machine and do no I/O,
// so the whole machine is tested without pcscd or a broker (page_test.go);
// flow keeps one behind its mutex and does the I/O around each transition.
//
// The screens (see screen): idle → reading (a token arrived) → token (its
// letters) or problem (it cannot sign: certificate, PIN blocked, unreadable)
// → signing (a batch runs) → done (what was signed) → token again on
// Dismiss. Opening a document and typing the PIN are screens of the page
// itself, over token; the page asks for them with Document and Sign, which
// claim only succeeds on the token screen.
type page struct {
	lang     string // the page's language now
	homeLang string // the terminal's own, for the next official

	state    kiosk.State
	reader   string            // reader of the present token; "" when none
	cert     *x509.Certificate // its 9c certificate
	signer   string            // SHA-256 of cert, lowercase hex
	problem  *kiosk.Message    // why this token cannot sign, if it cannot
	tries    int               // PIN retries left, -1 when unknown
	progress *kiosk.Progress
	outcome  *kiosk.Outcome
	lastErr  *kiosk.Message
	notice   *kiosk.Message
	busy     bool // a batch or a rejection is in flight
	// checking: the certificate's revocation status is being fetched;
	// it cannot sign until the answer is in (revocationChecked).
	checking bool
	pending  string // a reader whose token arrived while busy
	// parts is what the official reads about the terminal's parts (card
	// service, reader, broker, store); it outlives every screen.
	parts partsNotice
	// gen counts token arrivals, so a slow certificate read for a token
	// that has left since cannot overwrite the newer state.
	gen uint64
}

func newPage(lang string) page {
	return page{lang: lang, homeLang: lang, state: kiosk.StateIdle, tries: -1}
}

// screen names what the official sees, one word per state of the machine.
type screen string

const (
	screenIdle    screen = "idle"
	screenReading screen = "reading"
	screenToken   screen = "token"
	screenProblem screen = "problem"
	screenSigning screen = "signing"
	screenDone    screen = "done"
)

func (p *page) screen() screen {
	switch p.state {
	case kiosk.StateReading:
		return screenReading
	case kiosk.StateToken:
		if p.problem != nil {
			return screenProblem
		}
		return screenToken
	case kiosk.StateSigning:
		return screenSigning
	case kiosk.StateDone:
		return screenDone
	}
	return screenIdle
}

// arrive starts reading a token that was put on reader. It reports the
// arrival's generation and true, or false when an action is in flight:
// the token is then read once the action is over (release returns it).
func (p *page) arrive(reader string) (gen uint64, ok bool) {
	if p.busy {
		p.pending = reader
		return 0, false
	}
	p.gen++
	p.reader, p.cert, p.signer, p.problem, p.tries, p.checking = reader, nil, "", nil, -1, false
	p.state, p.outcome, p.lastErr, p.notice, p.progress = kiosk.StateReading, nil, nil, nil, nil
	return p.gen, true
}

// tokenRead is what reading a token found.
type tokenRead struct {
	info device.Info
	err  error // the token could not be read
	// certProblem is why its certificate cannot sign now, or nil.
	certProblem *kiosk.Message
	// checking: its revocation status is still to be fetched.
	checking bool
}

// read takes the result of reading the token of arrival gen. It reports
// false when that token has left or another arrived since.
func (p *page) read(gen uint64, reader string, r tokenRead) bool {
	if gen != p.gen || p.reader != reader {
		return false
	}
	p.state = kiosk.StateToken
	if r.err != nil {
		msg := tokenMessage(r.err)
		p.problem = &msg
		return true
	}
	p.cert = r.info.SignCert
	p.tries = r.info.PINRetries
	sum := sha256.Sum256(r.info.SignCert.Raw)
	p.signer = hex.EncodeToString(sum[:])
	p.problem = r.certProblem
	if p.problem == nil && r.info.PINRetries == 0 {
		p.problem = &kiosk.Message{Code: kiosk.CodePINBlocked}
	}
	p.checking = p.problem == nil && r.checking
	if p.checking {
		p.notice = &kiosk.Message{Code: kiosk.CodeCertChecking}
	}
	return true
}

// revocationChecked takes the revocation status of the token of arrival
// gen: problem is why it cannot sign, or nil. It reports false when that
// token has left or another arrived since.
func (p *page) revocationChecked(gen uint64, reader string, problem *kiosk.Message) bool {
	if gen != p.gen || p.reader != reader || !p.checking {
		return false
	}
	p.checking = false
	if p.notice != nil && p.notice.Code == kiosk.CodeCertChecking {
		p.notice = nil
	}
	if p.problem == nil {
		p.problem = problem
	}
	return true
}

// leave takes a token's removal from reader and reports whether the page
// changed. While a batch runs, the signing itself notices the removal and
// reports it; the page changes when it returns.
func (p *page) leave(reader string) bool {
	if reader == p.pending {
		p.pending = ""
	}
	if reader != p.reader {
		return false
	}
	p.gen++
	p.reader = ""
	// The next official starts in the terminal's own language.
	p.lang = p.homeLang
	if !p.busy {
		p.reset()
	}
	return true
}

func (p *page) reset() {
	p.state, p.cert, p.signer, p.problem, p.tries, p.checking = kiosk.StateIdle, nil, "", nil, -1, false
	p.progress, p.outcome, p.lastErr, p.notice = nil, nil, nil, nil
}

// claimed is the present token an action runs with.
type claimed struct {
	reader string
	cert   *x509.Certificate
	signer string
}

// claim marks the page busy for one action by the present signer; a
// signature (sign) also needs the certificate's revocation status in.
func (p *page) claim(sign bool) (claimed, error) {
	switch {
	case p.busy:
		return claimed{}, kiosk.NewUserError(kiosk.CodeCardBusy, errors.New("an action is in flight"), nil)
	case p.reader == "" || p.cert == nil:
		return claimed{}, kiosk.NewUserError(kiosk.CodeNoToken, device.ErrNoToken, nil)
	case p.problem != nil:
		return claimed{}, &kiosk.UserError{Message: *p.problem}
	case p.checking && sign:
		return claimed{}, kiosk.NewUserError(kiosk.CodeCertChecking, errors.New("the certificate's revocation status is being fetched"), nil)
	}
	p.busy = true
	return claimed{reader: p.reader, cert: p.cert, signer: p.signer}, nil
}

// release ends the action in flight. It returns the reader of a token that
// arrived meanwhile, to be read now, or "".
func (p *page) release() string {
	p.busy = false
	// A token that left mid-batch: the done screen stays, saying what was
	// signed and that the token must come back, until the next tap.
	if p.reader == "" && p.state != kiosk.StateDone {
		p.reset()
	}
	pending := p.pending
	p.pending = ""
	return pending
}

// signing shows a batch's progress; the page leaves the PIN screen only
// once the PIN is right.
func (p *page) signing(done, total int) {
	p.state = kiosk.StateSigning
	p.progress = &kiosk.Progress{Done: done, Total: total}
	p.lastErr, p.notice = nil, nil
}

// batchEnd is what a batch's end means beyond the page.
type batchEnd struct {
	// err is what the official's request answers: nil, or a
	// *kiosk.UserError.
	err error
	// pinRefused: the token refused the PIN (or would have spent its
	// last try); tries is then what is left.
	pinRefused bool
	// internal: the batch failed for a reason the official cannot act on.
	internal bool
}

// batchDone sets the page after a batch that made signed of total
// signatures and ended with err.
func (p *page) batchDone(signed, total int, err error) batchEnd {
	left := total - signed
	var pe *device.PINError
	p.progress = nil
	switch {
	case err == nil:
		p.state, p.outcome = kiosk.StateDone, &kiosk.Outcome{Signed: signed}
		p.tries = -1
		return batchEnd{}
	case errors.As(err, &pe) || errors.Is(err, device.ErrLastAttempt) || errors.Is(err, device.ErrPINBlocked):
		p.state = kiosk.StateToken
		if pe != nil {
			p.tries = pe.Retries
		}
		msg := tokenMessage(err)
		if errors.Is(err, device.ErrPINBlocked) {
			p.problem = &msg
		}
		return batchEnd{err: &kiosk.UserError{Message: msg, Err: err}, pinRefused: true}
	}
	msg := tokenMessage(err)
	end := batchEnd{internal: msg.Code == kiosk.CodeInternal}
	if signed > 0 {
		p.state, p.outcome = kiosk.StateDone, &kiosk.Outcome{Signed: signed, Left: left}
		p.lastErr = &msg
		return end
	}
	p.state = kiosk.StateToken
	if p.reader == "" {
		p.reset()
	}
	p.lastErr = &msg
	end.err = &kiosk.UserError{Message: msg, Err: err}
	return end
}

// setParts takes what the parts' probes say now and reports whether the
// page changed.
func (p *page) setParts(n partsNotice) bool {
	if p.parts.equal(n) {
		return false
	}
	p.parts = n
	return true
}

// rejected clears what the last action said after a rejection.
func (p *page) rejected() { p.lastErr, p.notice = nil, nil }

// dismiss leaves the done screen for the list, or idle if the token left.
func (p *page) dismiss() {
	if p.state != kiosk.StateDone {
		return
	}
	if p.reader == "" {
		p.reset()
		return
	}
	p.state, p.outcome, p.lastErr = kiosk.StateToken, nil, nil
}

// view is what the page renders, but for the signer's letters, which the
// flow reads from the store.
func (p *page) view(maxBatch int) kiosk.View {
	v := kiosk.View{
		State: p.state, Lang: p.lang, MaxBatch: maxBatch,
		Progress: p.progress, Result: p.outcome, Error: p.lastErr, Notice: p.notice,
		Parts: slices.Clone(p.parts.messages), Unavailable: p.parts.unavailable,
	}
	if p.problem != nil && v.Error == nil {
		v.Error = p.problem
	}
	if p.tries >= 0 {
		tries := p.tries
		v.TriesLeft = &tries
	}
	v.CanSign = p.state == kiosk.StateToken && p.problem == nil && p.cert != nil && !p.checking
	if p.cert != nil {
		v.Signer = &kiosk.Signer{
			Name: p.cert.Subject.CommonName, NIP: p.cert.Subject.SerialNumber,
			CertSHA256: p.signer, NotAfter: p.cert.NotAfter,
		}
	}
	return v
}

// tokenMessage is what the official reads about a device error.
func tokenMessage(err error) kiosk.Message {
	if m, ok := storeMessage(err); ok {
		return m
	}
	var pe *device.PINError
	switch {
	case errors.Is(err, device.ErrPINBlocked):
		return kiosk.Message{Code: kiosk.CodePINBlocked}
	case errors.As(err, &pe):
		return kiosk.Message{Code: kiosk.CodeWrongPIN, Params: map[string]string{"n": strconv.Itoa(pe.Retries)}}
	case errors.Is(err, device.ErrLastAttempt):
		return kiosk.Message{Code: kiosk.CodeLastAttempt}
	case errors.Is(err, device.ErrTokenRemoved):
		return kiosk.Message{Code: kiosk.CodeTokenRemoved}
	case errors.Is(err, device.ErrNoToken):
		return kiosk.Message{Code: kiosk.CodeNoToken}
	case errors.Is(err, device.ErrCardBusy):
		return kiosk.Message{Code: kiosk.CodeCardBusy}
	case errors.Is(err, device.ErrNoReader):
		return kiosk.Message{Code: kiosk.CodeNoReader}
	case errors.Is(err, device.ErrPCSCUnavailable):
		return kiosk.Message{Code: kiosk.CodePCSC}
	case errors.Is(err, device.ErrSlotEmpty):
		return kiosk.Message{Code: kiosk.CodeSlotEmpty}
	case errors.Is(err, device.ErrUnsupported):
		return kiosk.Message{Code: kiosk.CodeUnsupported}
	}
	return kiosk.Message{Code: kiosk.CodeInternal}
}
