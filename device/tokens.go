package device

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-piv/piv-go/v2/piv"
)

// Options configure Tokens. The zero value is usable.
type Options struct {
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// BusyWait bounds how long an operation retries while another
	// application holds the card; 0 means 2 s.
	BusyWait time.Duration
}

// Tokens is the terminal's access to PIV tokens: readers, presence events
// and card operations. All card access goes through one lock, so operations
// from different goroutines never interleave on a card.
type Tokens struct {
	log      *slog.Logger
	busyWait time.Duration
	sem      chan struct{} // the one card lock; a channel so waiting honours ctx
	w        *watcher

	closeOnce sync.Once
	closed    chan struct{}

	// resetOnClose is false only in the test that shows the PIN state
	// would survive without the reset.
	resetOnClose bool
}

// Info is what a token tells without a PIN.
type Info struct {
	// Serial is the token's serial number.
	Serial uint32
	// Version is the PIV application's firmware version, "major.minor.patch".
	Version string
	// SignCert is the certificate of slot 9c (digital signature), nil if none.
	SignCert *x509.Certificate
	// AuthCert is the certificate of slot 9a (authentication), nil if none.
	AuthCert *x509.Certificate
	// PINRetries is how many PIN attempts are left, or -1 when the card did
	// not say (it answers only while the PIN is not verified).
	PINRetries int
	// PUKRetries is how many PUK attempts are left, or -1 when the card did
	// not say (firmware before 5.3 has no PUK metadata).
	PUKRetries int
	// FormFactor is the token's form factor as piv-go names it ("USB-A
	// Keychain", "USB-C Nano" …), or "" when unknown.
	FormFactor string
	// Defaults says which factory credentials the token still has.
	Defaults Defaults
}

// Defaults says which factory credentials a token still has.
type Defaults struct {
	// Known is false when the token cannot say (no PIN/PUK metadata:
	// firmware before 5.3); the other fields are then false.
	Known bool
	// PIN is true while the PIN is still 123456.
	PIN bool
	// PUK is true while the PUK is still 12345678.
	PUK bool
	// ManagementKey is true while the management key is still the
	// well-known default.
	ManagementKey bool
}

// Open starts watching readers for tokens. It succeeds even while pcscd is
// down; the watcher connects when pcscd comes up.
func Open(ctx context.Context, opts Options) (*Tokens, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open tokens: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tokens{
		log:          log,
		busyWait:     opts.BusyWait,
		sem:          make(chan struct{}, 1),
		closed:       make(chan struct{}),
		resetOnClose: true,
	}
	if t.busyWait <= 0 {
		t.busyWait = 2 * time.Second
	}
	t.w = startWatcher(log)
	return t, nil
}

// Close stops the presence watcher, waits for it and for any card operation
// in progress, and closes the Events channel.
func (t *Tokens) Close(ctx context.Context) error {
	t.closeOnce.Do(func() { close(t.closed) })
	if err := t.w.stop(ctx); err != nil {
		return fmt.Errorf("close tokens: %w", err)
	}
	select {
	case t.sem <- struct{}{}:
		<-t.sem
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close tokens: wait for card operation: %w", ctx.Err())
	}
}

// Events returns the presence events of all readers: a token arriving in or
// leaving a reader. Tokens already present when watching starts (or resumes
// after pcscd restarts) arrive as Arrived; when pcscd goes away, every
// present token is reported Left. The channel is closed by Close; the caller
// must keep reading it.
func (t *Tokens) Events() <-chan Event { return t.w.events }

// Readers lists the readers pcscd knows, contact and contactless.
func (t *Tokens) Readers(ctx context.Context) ([]string, error) {
	if err := t.usable(ctx); err != nil {
		return nil, fmt.Errorf("list readers: %w", err)
	}
	c, err := establish()
	if err != nil {
		return nil, fmt.Errorf("list readers: %w", classify(err, phaseConnect))
	}
	defer c.release()
	rs, err := c.listReaders()
	if err != nil {
		return nil, classify(err, phaseConnect)
	}
	return rs, nil
}

// Present lists the readers that hold a token now.
func (t *Tokens) Present(ctx context.Context) ([]string, error) {
	if err := t.usable(ctx); err != nil {
		return nil, fmt.Errorf("list present tokens: %w", err)
	}
	c, err := establish()
	if err != nil {
		return nil, fmt.Errorf("list present tokens: %w", classify(err, phaseConnect))
	}
	defer c.release()
	rs, err := c.listReaders()
	if err != nil {
		return nil, fmt.Errorf("list present tokens: %w", classify(err, phaseConnect))
	}
	states := make([]readerState, len(rs))
	for i, r := range rs {
		states[i].name = r
	}
	if err := c.getStatusChange(0, states); err != nil {
		return nil, fmt.Errorf("list present tokens: %w", classify(err, phaseConnect))
	}
	var out []string
	for _, s := range states {
		if s.event&statePresent != 0 {
			out = append(out, s.name)
		}
	}
	return out, nil
}

// Info reads the token in reader: serial, version, form factor,
// certificates, PIN and PUK retries and which factory credentials it still
// has. It needs no PIN and leaves the card's state as it was.
func (t *Tokens) Info(ctx context.Context, reader string) (Info, error) {
	unlock, err := t.lock(ctx)
	if err != nil {
		return Info{}, fmt.Errorf("read token in %q: %w", reader, err)
	}
	defer unlock()
	// The metadata connection must be closed before piv-go connects
	// exclusively.
	creds, err := t.readCredentials(ctx, reader)
	if err != nil {
		return Info{}, fmt.Errorf("read token in %q: %w", reader, err)
	}
	yk, err := t.open(ctx, reader)
	if err != nil {
		return Info{}, fmt.Errorf("read token in %q: %w", reader, err)
	}
	defer yk.Close()
	info, err := t.readInfo(reader, yk, creds)
	if err != nil {
		return Info{}, fmt.Errorf("read token in %q: %w", reader, err)
	}
	return info, nil
}

// readInfo reads what Info reports from an open card, with the credential
// metadata read before it was opened.
func (t *Tokens) readInfo(reader string, yk *piv.YubiKey, creds credentials) (Info, error) {
	info := Info{PUKRetries: creds.pukRetries(), Defaults: creds.defaults()}
	v := yk.Version()
	info.Version = fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	serial, err := yk.Serial()
	if err != nil {
		return Info{}, fmt.Errorf("read serial: %w", t.diagnose(reader, err))
	}
	info.Serial = serial
	if info.SignCert, err = slotCert(yk, piv.SlotSignature); err != nil {
		return Info{}, fmt.Errorf("read certificate 9c: %w", t.diagnose(reader, err))
	}
	if info.AuthCert, err = slotCert(yk, piv.SlotAuthentication); err != nil {
		return Info{}, fmt.Errorf("read certificate 9a: %w", t.diagnose(reader, err))
	}
	n, err := yk.Retries()
	if err != nil {
		if m := t.diagnose(reader, err); sentinelOf(m) != nil {
			return Info{}, fmt.Errorf("read pin retries: %w", m)
		}
		// VERIFY without data answers 9000 when the PIN is verified
		// (SP 800-73-4 §3.2.1), which piv-go reports as an error.
		n = -1
	}
	info.PINRetries = n
	info.FormFactor = formFactor(yk)
	return info, nil
}

// formFactor asks the YubiKey management application for the form factor.
// A card without that application (or a YubiKey that leaves it unset) has
// none to tell, which is no error: "" means unknown. The query selects
// another application, so it comes last; piv-go selects PIV again after it.
func formFactor(yk *piv.YubiKey) string {
	f, err := yk.FormFactor()
	if err != nil || f == 0 {
		return ""
	}
	return f.String()
}

// slotCert reads a slot's certificate; an empty slot gives nil.
func slotCert(yk *piv.YubiKey, slot piv.Slot) (*x509.Certificate, error) {
	c, err := yk.Certificate(slot)
	if errors.Is(err, piv.ErrNotFound) {
		return nil, nil
	}
	return c, err
}

// Unblock sets a new PIN with the PUK after the PIN was blocked. A wrong PUK
// is reported as *PINError with PUK set. The caller owns and zeroes puk and
// newPIN.
func (t *Tokens) Unblock(ctx context.Context, reader string, puk, newPIN []byte) error {
	err := t.Session(ctx, reader, func(s *Session) error {
		if err := checkPIN(puk); err != nil {
			return fmt.Errorf("puk: %w", err)
		}
		if err := checkPIN(newPIN); err != nil {
			return fmt.Errorf("new pin: %w", err)
		}
		// piv-go takes strings; see pinString for the copies it makes.
		err := s.yk.Unblock(pinString(puk), pinString(newPIN))
		if err == nil {
			return nil
		}
		if pe := authError(err, true); pe != nil {
			return pe
		}
		return s.diagnose(err)
	})
	if err != nil {
		return fmt.Errorf("unblock pin: %w", err)
	}
	return nil
}

// usable reports ErrClosed after Close, or ctx's error.
func (t *Tokens) usable(ctx context.Context) error {
	select {
	case <-t.closed:
		return ErrClosed
	default:
	}
	return ctx.Err()
}

// lock takes the card lock, honouring ctx and Close.
func (t *Tokens) lock(ctx context.Context) (unlock func(), err error) {
	if err := t.usable(ctx); err != nil {
		return nil, err
	}
	select {
	case t.sem <- struct{}{}:
		return func() { <-t.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.closed:
		return nil, ErrClosed
	}
}

// open connects to the card in reader exclusively, retrying with capped
// backoff while another application holds it, up to BusyWait.
func (t *Tokens) open(ctx context.Context, reader string) (*piv.YubiKey, error) {
	var yk *piv.YubiKey
	err := t.retryBusy(ctx, func() error {
		var err error
		yk, err = piv.Open(reader)
		return classify(err, phaseConnect)
	})
	if err != nil {
		return nil, fmt.Errorf("open card: %w", err)
	}
	return yk, nil
}

// retryBusy runs f until it does not report ErrCardBusy, backing off from
// 10 ms to 250 ms, for at most BusyWait.
func (t *Tokens) retryBusy(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(t.busyWait)
	backoff := 10 * time.Millisecond
	for {
		err := f()
		if !errors.Is(err, ErrCardBusy) {
			return err
		}
		if time.Now().Add(backoff).After(deadline) {
			return err
		}
		t.log.Debug("card busy, retrying", "backoff", backoff)
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return errors.Join(err, ctx.Err())
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// diagnose classifies an error from a card command. A transport failure
// that says nothing of its cause (vpcd, for one, answers an empty response
// when the card is pulled mid-command, which piv-go reports as "response too
// short") is settled by asking pcscd about the reader, waiting up to
// goneWait for pcscd's next presence poll to notice a removal.
func (t *Tokens) diagnose(reader string, err error) error {
	m := classify(err, phaseCard)
	if sentinelOf(m) != nil || !transportFailure(err) {
		return m
	}
	c, cerr := establish()
	if cerr != nil {
		return fmt.Errorf("%w: %w", ErrPCSCUnavailable, err)
	}
	defer c.release()
	st := []readerState{{name: reader}}
	if serr := c.getStatusChange(0, st); serr != nil {
		return classify(fmt.Errorf("%w (%w)", err, serr), phaseCard)
	}
	if st[0].event&statePresent != 0 {
		st[0].current = st[0].event &^ stateChanged
		if serr := c.getStatusChange(uint32(goneWait/time.Millisecond), st); serr != nil {
			// A timeout: the token stayed; the error is the card's own.
			return m
		}
	}
	if st[0].event&statePresent == 0 {
		return fmt.Errorf("%w: %w", ErrTokenRemoved, err)
	}
	return m
}

// transportFailure reports whether err says the exchange with the card
// failed, rather than the card answering: a PC/SC code, or piv-go's text for
// an empty response (piv/pcsc_unix.go transmit), which is all it reports
// when vpcd loses the card mid-command.
func transportFailure(err error) bool {
	if _, ok := pcscCode(err); ok {
		return true
	}
	return strings.Contains(err.Error(), "scard response too short")
}

// goneWait bounds how long diagnose waits for pcscd to notice a removal; it
// covers pcsc-lite's 400 ms presence poll (PCSCLITE_STATUS_POLL_RATE) for
// readers whose driver cannot signal card events.
const goneWait = time.Second

// resetCard clears the card's security state, in particular a verified PIN,
// by reconnecting and disconnecting with SCARD_RESET_CARD. piv-go's Close
// disconnects with SCARD_LEAVE_CARD (piv/pcsc_unix.go), which would leave
// the PIN verified for whoever connects next. A card that is gone has lost
// power, and with it the PIN state.
func (t *Tokens) resetCard(ctx context.Context, reader string) error {
	err := t.retryBusy(ctx, func() error {
		c, err := establish()
		if err != nil {
			return classify(err, phaseConnect)
		}
		defer c.release()
		h, err := c.connectExclusive(reader)
		if err != nil {
			return classify(err, phaseConnect)
		}
		return classify(h.disconnect(true), phaseConnect)
	})
	if errors.Is(err, ErrNoToken) || errors.Is(err, ErrNoReader) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clear pin state: %w", err)
	}
	return nil
}
