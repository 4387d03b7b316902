package device

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/go-piv/piv-go/v2/piv"
)

// Admin is exclusive access to one token for IT's enrolment operations, from
// Tokens.Admin. It is valid only inside the function given to Tokens.Admin;
// its methods are serialised, so a Signer may be used from another
// goroutine. Nothing it does logs a PIN, PUK or key.
type Admin struct {
	t      *Tokens
	ctx    context.Context
	reader string

	mu     sync.Mutex
	yk     *piv.YubiKey
	closed bool
	pins   [][]byte // copies held by Signers, zeroed when the Admin ends
}

// Admin opens the token in reader exclusively, runs fn with an *Admin, then
// closes the card and resets it, as Session does, so that neither the PIN
// nor the management key stays authenticated for whoever uses the token
// next. fn should not wait for the user: all other card access waits.
func (t *Tokens) Admin(ctx context.Context, reader string, fn func(*Admin) error) (err error) {
	unlock, err := t.lock(ctx)
	if err != nil {
		return fmt.Errorf("admin on %q: %w", reader, err)
	}
	defer unlock()
	yk, err := t.open(ctx, reader)
	if err != nil {
		return fmt.Errorf("admin on %q: %w", reader, err)
	}
	a := &Admin{t: t, ctx: ctx, reader: reader, yk: yk}
	defer func() {
		if cerr := a.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("admin on %q: %w", reader, cerr))
		}
	}()
	return fn(a)
}

// close ends the Admin: it zeroes the PINs Signers hold, closes the card
// and resets it.
func (a *Admin) close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for _, p := range a.pins {
		clear(p)
	}
	a.pins = nil
	if a.yk != nil {
		if err := a.yk.Close(); err != nil {
			a.t.log.Debug("close card", "reader", a.reader, "err", err)
		}
		a.yk = nil
	}
	if !a.t.resetOnClose {
		return nil
	}
	// The reset must happen even when the caller's ctx is done.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), a.t.busyWait+time.Second)
	defer cancel()
	if err := a.t.resetCard(rctx, a.reader); err != nil {
		a.t.log.Error("pin state of token may not be cleared", "reader", a.reader, "err", err)
		return err
	}
	return nil
}

// begin checks that the Admin is usable; a.mu is held.
func (a *Admin) begin() error {
	if a.closed {
		return ErrSessionClosed
	}
	if a.yk == nil {
		return fmt.Errorf("card not open after an earlier failure: %w", ErrTokenRemoved)
	}
	return a.ctx.Err()
}

func (a *Admin) diagnose(err error) error { return a.t.diagnose(a.reader, err) }

// outside runs f with the piv-go connection closed, for the commands piv-go
// cannot send (its connection is exclusive), and opens the card again. The
// card is left as it is in between, so another application that connects
// in that instant finds it as this Admin left it; every operation here
// authenticates afresh. a.mu is held.
func (a *Admin) outside(f func() error) error {
	if err := a.yk.Close(); err != nil {
		a.t.log.Debug("close card", "reader", a.reader, "err", err)
	}
	a.yk = nil
	err := f()
	yk, oerr := a.t.open(a.ctx, a.reader)
	if oerr != nil {
		return errors.Join(err, oerr)
	}
	a.yk = yk
	return err
}

// credentials reads the credential metadata on a connection of its own.
// a.mu is held.
func (a *Admin) credentials() (credentials, error) {
	var creds credentials
	err := a.outside(func() error {
		var err error
		creds, err = a.t.readCredentials(a.ctx, a.reader)
		return err
	})
	return creds, err
}

// Info reads the token as Tokens.Info does.
func (a *Admin) Info() (Info, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.begin(); err != nil {
		return Info{}, fmt.Errorf("read token: %w", err)
	}
	creds, err := a.credentials()
	if err != nil {
		return Info{}, fmt.Errorf("read token: %w", err)
	}
	info, err := a.t.readInfo(a.reader, a.yk, creds)
	if err != nil {
		return Info{}, fmt.Errorf("read token: %w", err)
	}
	return info, nil
}

// ChangePIN replaces the PIN old with new (6 to 8 bytes). A wrong old PIN
// is *PINError with the retries left. The caller owns and zeroes both.
func (a *Admin) ChangePIN(old, new []byte) error {
	if err := a.changeRef(old, new, false); err != nil {
		return fmt.Errorf("change pin: %w", err)
	}
	return nil
}

// ChangePUK replaces the PUK old with new (6 to 8 bytes). A wrong old PUK
// is *PINError with PUK set and the retries left. The caller owns and
// zeroes both.
func (a *Admin) ChangePUK(old, new []byte) error {
	if err := a.changeRef(old, new, true); err != nil {
		return fmt.Errorf("change puk: %w", err)
	}
	return nil
}

func (a *Admin) changeRef(old, new []byte, puk bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.begin(); err != nil {
		return err
	}
	if err := checkPIN(old); err != nil {
		return fmt.Errorf("old value: %w", err)
	}
	// A YubiKey refuses a PIN or PUK shorter than 6 (SP 800-73-4 Part 2
	// §2.4.3 allows 6 to 8 for the PIN).
	if len(new) < 6 || len(new) > 8 {
		return fmt.Errorf("new value must be 6 to 8 bytes, got %d", len(new))
	}
	// piv-go takes strings; see pinString for the copies it makes.
	var err error
	if puk {
		err = a.yk.SetPUK(pinString(old), pinString(new))
	} else {
		err = a.yk.SetPIN(pinString(old), pinString(new))
	}
	if err == nil {
		return nil
	}
	if pe := authError(err, puk); pe != nil {
		return pe
	}
	return a.diagnose(err)
}

// verifyPIN presents pin; a.mu is held. A wrong PIN is *PINError. Unlike
// Session.VerifyPIN it does not guard the last attempt: the operator at an
// enrolment station types the PIN for the operation at hand.
func (a *Admin) verifyPIN(pin []byte) error {
	if err := checkPIN(pin); err != nil {
		return fmt.Errorf("verify pin: %w", err)
	}
	err := a.yk.VerifyPIN(pinString(pin))
	if err == nil {
		return nil
	}
	if pe := authError(err, false); pe != nil {
		return fmt.Errorf("verify pin: %w", pe)
	}
	return fmt.Errorf("verify pin: %w", a.diagnose(err))
}

// storedKey reads the management key kept PIN-protected on the token (the
// printed information object 5FC109, tag 89, as ykman and yubico-piv-tool
// keep it), verifying pin on the way; nil when there is none. a.mu is held.
func (a *Admin) storedKey(pin []byte) ([]byte, error) {
	if err := checkPIN(pin); err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	// piv-go verifies the PIN in the same transaction (piv/piv.go
	// ykGetProtectedMetadata).
	m, err := a.yk.Metadata(pinString(pin))
	if err != nil {
		if pe := authError(err, false); pe != nil {
			return nil, fmt.Errorf("read pin-protected data: %w", pe)
		}
		return nil, fmt.Errorf("read pin-protected data: %w", a.diagnose(err))
	}
	if m.ManagementKey == nil {
		return nil, nil
	}
	return bytes.Clone(*m.ManagementKey), nil
}

// managementKey finds the key to administer the token with, after
// verifying pin: the PIN-protected one when the token's metadata says the
// key is no longer the default, else the default. A token without metadata
// (firmware before 5.3) is taken at the stored key when there is one. A key
// that is neither is ErrManagementKeyUnknown. a.mu is held.
func (a *Admin) managementKey(pin []byte) ([]byte, error) {
	creds, err := a.credentials()
	if err != nil {
		return nil, err
	}
	stored, err := a.storedKey(pin)
	if err != nil {
		return nil, err
	}
	switch {
	case creds.known && creds.mgm.isDefault:
		return bytes.Clone(piv.DefaultManagementKey), nil
	case stored != nil:
		return stored, nil
	case !creds.known:
		return bytes.Clone(piv.DefaultManagementKey), nil
	}
	return nil, ErrManagementKeyUnknown
}

// ProtectManagementKey replaces a default management key with a random
// AES-192 key (3DES on firmware before 5.4, which has no AES) stored
// PIN-protected on the token (printed information object 5FC109, tag 89:
// the convention ykman and yubico-piv-tool use). With a key already
// PIN-protected it checks that the stored key is the token's. A key that is
// neither is ErrManagementKeyUnknown. The caller owns and zeroes pin.
func (a *Admin) ProtectManagementKey(pin []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.begin(); err != nil {
		return fmt.Errorf("protect management key: %w", err)
	}
	if err := a.protect(pin); err != nil {
		return fmt.Errorf("protect management key: %w", err)
	}
	return nil
}

func (a *Admin) protect(pin []byte) error {
	key, err := a.managementKey(pin)
	if err != nil {
		return err
	}
	defer clear(key)
	if !bytes.Equal(key, piv.DefaultManagementKey) {
		// Already protected: writing the stored key back authenticates
		// with it, which proves it is the token's.
		if err := a.yk.SetMetadata(key, &piv.Metadata{ManagementKey: &key}); err != nil {
			return fmt.Errorf("authenticate with the stored key: %w: %w", ErrManagementKeyUnknown, a.diagnose(err))
		}
		// The flag may be missing if an earlier protect stopped after the
		// key change; setting it again is harmless.
		return a.markProtected(key)
	}
	// piv-go's SetManagementKey makes a 24-byte key AES-192 on firmware 5.4
	// and later and 3DES before (piv/piv.go ykSetManagementKey, v2.6.0).
	fresh := make([]byte, 24)
	defer clear(fresh)
	if _, err := io.ReadFull(rand.Reader, fresh); err != nil {
		return fmt.Errorf("make management key: %w", err)
	}
	// Store first, then change: if the change fails, the token still has
	// its default key and a second try starts over; the other way round, a
	// failed store would leave a key nobody knows.
	if err := a.yk.SetMetadata(key, &piv.Metadata{ManagementKey: &fresh}); err != nil {
		return fmt.Errorf("store management key: %w", a.diagnose(err))
	}
	if err := a.yk.SetManagementKey(key, fresh); err != nil {
		return fmt.Errorf("set management key: %w", a.diagnose(err))
	}
	return a.markProtected(fresh)
}

// markProtected records in the admin data that the management key is
// stored PIN-protected, so that ykman and yubico-piv-tool use it (pivman.go).
func (a *Admin) markProtected(key []byte) error {
	if err := a.outside(func() error { return a.markKeyProtected(key) }); err != nil {
		return fmt.Errorf("mark management key pin-protected: %w", err)
	}
	return nil
}
