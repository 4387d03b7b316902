package device

import (
	"errors"
	"fmt"

	"github.com/go-piv/piv-go/v2/piv"
)

// Errors that callers decide on. Every error this package returns that has
// one of these meanings wraps the sentinel, so errors.Is works through any
// added context.
var (
	// ErrNoReader means the named reader does not exist, or there is none.
	ErrNoReader = errors.New("no smart card reader")
	// ErrNoToken means the reader is empty.
	ErrNoToken = errors.New("no token in the reader")
	// ErrTokenRemoved means the token left the reader during an operation.
	ErrTokenRemoved = errors.New("token removed during the operation")
	// ErrPINBlocked means the PIN has no retries left; only the PUK can
	// unblock it.
	ErrPINBlocked = errors.New("pin blocked")
	// ErrPUKBlocked means the PUK has no retries left.
	ErrPUKBlocked = errors.New("puk blocked")
	// ErrLastAttempt means VerifyPIN was refused, without touching the card's
	// counter, because one retry is left and the caller did not confirm it.
	ErrLastAttempt = errors.New("only one pin attempt left: confirm before trying")
	// ErrPINRequired means the key needs a verified PIN before this operation.
	ErrPINRequired = errors.New("pin verification required")
	// ErrCardBusy means another application held the card for longer than
	// the bounded wait.
	ErrCardBusy = errors.New("card busy: another application holds it")
	// ErrPCSCUnavailable means pcscd is not running or went away; operations
	// work again once it is back.
	ErrPCSCUnavailable = errors.New("smart card service (pcscd) unavailable")
	// ErrUnsupported means the token, key or algorithm is not one this
	// package signs with.
	ErrUnsupported = errors.New("key or algorithm not supported")
	// ErrSlotEmpty means the slot holds no certificate or key.
	ErrSlotEmpty = errors.New("slot has no key or certificate")
	// ErrSessionClosed means a Session or its Signer was used after the
	// function given to Tokens.Session returned.
	ErrSessionClosed = errors.New("session closed")
	// ErrClosed means Tokens was used after Close.
	ErrClosed = errors.New("tokens closed")
	// ErrManagementKeyUnknown means the token's management key is neither
	// the default nor stored PIN-protected on the token, so this package
	// cannot administer it.
	ErrManagementKeyUnknown = errors.New("management key unknown: neither default nor pin-protected")
	// ErrKeyMismatch means a certificate's public key is not the key in the
	// slot it was to be written to.
	ErrKeyMismatch = errors.New("certificate is not for the key in the slot")
)

// PINError reports a wrong PIN (or PUK) and how many retries are left. A
// PINError with no retries left also matches ErrPINBlocked (or ErrPUKBlocked).
type PINError struct {
	// Retries is how many attempts the card still allows.
	Retries int
	// PUK is true when the wrong value was the PUK.
	PUK bool
}

// Error says which secret was wrong and how many retries are left.
func (e *PINError) Error() string {
	what := "pin"
	if e.PUK {
		what = "puk"
	}
	return fmt.Sprintf("wrong %s: %d retries left", what, e.Retries)
}

// Is makes a PINError with no retries left match the blocked sentinel.
func (e *PINError) Is(target error) bool {
	if e.Retries != 0 {
		return false
	}
	if e.PUK {
		return target == ErrPUKBlocked
	}
	return target == ErrPINBlocked
}

// PC/SC return codes this package decides on (pcsclite.h).
const (
	codeSharingViolation  = 0x8010000B
	codeNoSmartcard       = 0x8010000C
	codeUnknownReader     = 0x80100009
	codeReaderUnavailable = 0x80100017
	codeNoReaders         = 0x8010002E
	codeNoService         = 0x8010001D
	codeServiceStopped    = 0x8010001E
	codeCommError         = 0x80100013
	codeInvalidHandle     = 0x80100003
	codeCancelled         = 0x80100002
	codeTimeout           = 0x8010000A
	codeNotTransacted     = 0x80100016
	codeUnresponsive      = 0x80100066
	codeUnpowered         = 0x80100067
	codeReset             = 0x80100068
	codeRemoved           = 0x80100069
)

// pivMessages maps piv-go's PC/SC error texts back to their codes. piv-go's
// error type for PC/SC codes is unexported (piv/pcsc.go scErr), and its text
// is the one stable handle on the code. The tests that meet these codes
// through the real stack (busy, empty and unknown reader, pcscd down) pin them.
var pivMessages = map[string]uint32{
	"the smart card cannot be accessed because of other connections outstanding":                codeSharingViolation,
	"the operation requires a Smart Card, but no Smart Card is currently in the device":         codeNoSmartcard,
	"the specified reader name is not recognized":                                               codeUnknownReader,
	"the specified reader is not currently available for use":                                   codeReaderUnavailable,
	"cannot find a smart card reader":                                                           codeNoReaders,
	"the Smart card resource manager is not running":                                            codeNoService,
	"the Smart card resource manager has shut down":                                             codeServiceStopped,
	"an internal communications error has been detected":                                        codeCommError,
	"the supplied handle was invalid":                                                           codeInvalidHandle,
	"an attempt was made to end a non-existent transaction":                                     codeNotTransacted,
	"the smart card is not responding to a reset":                                               codeUnresponsive,
	"power has been removed from the smart card, so that further communication is not possible": codeUnpowered,
	"the smart card has been reset, so any shared state information is invalid":                 codeReset,
	"the smart card has been removed, so further communication is not possible":                 codeRemoved,
	"the action was cancelled by an SCardCancel request":                                        codeCancelled,
	"the user-specified timeout value has expired":                                              codeTimeout,
}

// pcscCode finds the PC/SC return code in err's chain, from this package's
// binding or from piv-go.
func pcscCode(err error) (uint32, bool) {
	var pe pcscError
	if errors.As(err, &pe) {
		return uint32(pe), true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if c, ok := pivMessages[e.Error()]; ok {
			return c, true
		}
	}
	return 0, false
}

// statusWord is implemented by piv-go's APDU error (piv/pcsc.go apduErr).
type statusWord interface{ Status() uint16 }

// phase says where an error happened, which decides what a missing card means.
type phase int

const (
	phaseConnect phase = iota // opening the card: a missing card is ErrNoToken
	phaseCard                 // in a session: a missing card is ErrTokenRemoved
)

// classify maps an error from piv-go or PC/SC to this package's sentinels,
// once, keeping the original in the chain. It returns err unchanged when no
// sentinel applies.
func classify(err error, ph phase) error {
	if err == nil {
		return nil
	}
	if sentinelOf(err) != nil {
		return err
	}
	if code, ok := pcscCode(err); ok {
		switch code {
		case codeSharingViolation:
			return fmt.Errorf("%w: %w", ErrCardBusy, err)
		case codeUnknownReader, codeReaderUnavailable, codeNoReaders:
			return fmt.Errorf("%w: %w", ErrNoReader, err)
		case codeNoService, codeServiceStopped:
			return fmt.Errorf("%w: %w", ErrPCSCUnavailable, err)
		case codeNoSmartcard, codeRemoved, codeUnpowered, codeReset, codeUnresponsive:
			if ph == phaseCard {
				return fmt.Errorf("%w: %w", ErrTokenRemoved, err)
			}
			return fmt.Errorf("%w: %w", ErrNoToken, err)
		}
		return err
	}
	var sw statusWord
	if errors.As(err, &sw) {
		switch sw.Status() {
		case 0x6982:
			return fmt.Errorf("%w: %w", ErrPINRequired, err)
		case 0x6a81, 0x6d00, 0x6a86:
			return fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
	}
	if errors.Is(err, piv.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrSlotEmpty, err)
	}
	return err
}

// sentinelOf returns the sentinel err already wraps, if any.
func sentinelOf(err error) error {
	for _, s := range []error{ErrNoReader, ErrNoToken, ErrTokenRemoved, ErrPINBlocked, ErrPUKBlocked,
		ErrLastAttempt, ErrPINRequired, ErrCardBusy, ErrPCSCUnavailable, ErrUnsupported, ErrSlotEmpty,
		ErrSessionClosed, ErrClosed, ErrManagementKeyUnknown, ErrKeyMismatch} {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// authError maps a wrong PIN or PUK reported by piv-go to *PINError.
func authError(err error, puk bool) error {
	var ae piv.AuthErr
	if !errors.As(err, &ae) {
		return nil
	}
	return &PINError{Retries: ae.Retries, PUK: puk}
}
