package device

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unsafe"

	"github.com/go-piv/piv-go/v2/piv"
)

// Slot is a PIV key slot (SP 800-73-4 Part 1 §3.1.1, table 4b).
type Slot byte

// The slots this package signs with.
const (
	// SlotAuthentication is slot 9a, PIV Authentication.
	SlotAuthentication Slot = 0x9a
	// SlotSignature is slot 9c, Digital Signature.
	SlotSignature Slot = 0x9c
)

func (s Slot) piv() (piv.Slot, error) {
	switch s {
	case SlotAuthentication:
		return piv.SlotAuthentication, nil
	case SlotSignature:
		return piv.SlotSignature, nil
	}
	return piv.Slot{}, fmt.Errorf("slot %02x: %w", byte(s), ErrUnsupported)
}

// PINPolicy says when a slot's key needs the PIN.
type PINPolicy int

// PIN policies, from the YubiKey's GET METADATA.
const (
	// PINPolicyUnknown means the token does not say (firmware before 5.3);
	// treat it as PINPolicyAlways.
	PINPolicyUnknown PINPolicy = iota
	// PINPolicyNever means the key signs without a PIN.
	PINPolicyNever
	// PINPolicyOnce means one VerifyPIN per session is enough.
	PINPolicyOnce
	// PINPolicyAlways means VerifyPIN must come right before each signature.
	PINPolicyAlways
)

// Session is exclusive access to one token, from Tokens.Session. It is valid
// only inside the function given to Tokens.Session; its methods are
// serialised, so a Signer may be used from another goroutine.
type Session struct {
	t      *Tokens
	ctx    context.Context
	reader string
	yk     *piv.YubiKey

	mu       sync.Mutex
	closed   bool
	verified bool // a VERIFY succeeded in this session and none failed since
	keys     map[Slot]crypto.PublicKey
}

// Session opens the token in reader exclusively, runs fn, then closes the
// card and resets it, so that no PIN stays verified for whoever uses the
// token next. Other applications (ykman, yubico-piv-tool) can use the token
// between sessions. The reset happens even when fn fails or ctx is cancelled;
// if it fails while the token is still present, Session returns that error.
// fn should not wait for the user: while it runs, the token is held
// exclusively and all other card access waits.
func (t *Tokens) Session(ctx context.Context, reader string, fn func(*Session) error) (err error) {
	unlock, err := t.lock(ctx)
	if err != nil {
		return fmt.Errorf("session on %q: %w", reader, err)
	}
	defer unlock()
	yk, err := t.open(ctx, reader)
	if err != nil {
		return fmt.Errorf("session on %q: %w", reader, err)
	}
	s := &Session{t: t, ctx: ctx, reader: reader, yk: yk, keys: map[Slot]crypto.PublicKey{}}
	defer func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		if cerr := yk.Close(); cerr != nil {
			t.log.Debug("close card", "reader", reader, "err", cerr)
		}
		if !t.resetOnClose {
			return
		}
		// The reset must happen even when the caller's ctx is done.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.busyWait+time.Second)
		defer cancel()
		if rerr := t.resetCard(rctx, reader); rerr != nil {
			t.log.Error("pin state of token may not be cleared", "reader", reader, "err", rerr)
			err = errors.Join(err, fmt.Errorf("session on %q: %w", reader, rerr))
		}
	}()
	return fn(s)
}

// Reader is the reader this session's token sits in.
func (s *Session) Reader() string { return s.reader }

func (s *Session) begin() error {
	if s.closed {
		return ErrSessionClosed
	}
	return s.ctx.Err()
}

func (s *Session) diagnose(err error) error { return s.t.diagnose(s.reader, err) }

// VerifyPIN presents the PIN to the token. It never retries: a wrong PIN is
// *PINError with the retries left (matching ErrPINBlocked at zero). When one
// retry is left it refuses with ErrLastAttempt, without sending the PIN,
// unless lastAttemptConfirmed is true. It may be called again before each
// signature of a PINPolicyAlways key. The caller owns pin and zeroes it;
// VerifyPIN keeps no reference to it.
func (s *Session) VerifyPIN(pin []byte, lastAttemptConfirmed bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(); err != nil {
		return fmt.Errorf("verify pin: %w", err)
	}
	if err := checkPIN(pin); err != nil {
		return fmt.Errorf("verify pin: %w", err)
	}
	// Once a VERIFY succeeded, the counter is back at its reset value
	// (SP 800-73-4 §3.2.1) and the card no longer answers the retries
	// query, so it is asked only before the first VERIFY.
	if !s.verified {
		n, err := s.yk.Retries()
		if err != nil {
			return fmt.Errorf("verify pin: read retries: %w", s.diagnose(err))
		}
		switch {
		case n == 0:
			return fmt.Errorf("verify pin: %w", &PINError{Retries: 0})
		case n == 1 && !lastAttemptConfirmed:
			return fmt.Errorf("verify pin: %w", ErrLastAttempt)
		}
	}
	err := s.yk.VerifyPIN(pinString(pin))
	if err == nil {
		s.verified = true
		return nil
	}
	s.verified = false
	if pe := authError(err, false); pe != nil {
		return fmt.Errorf("verify pin: %w", pe)
	}
	return fmt.Errorf("verify pin: %w", s.diagnose(err))
}

// checkPIN enforces the PIV PIN length (SP 800-73-4 Part 2 §3.1.1: up to 8
// bytes) before anything reaches the card.
func checkPIN(pin []byte) error {
	if len(pin) == 0 || len(pin) > 8 {
		return fmt.Errorf("must be 1 to 8 bytes, got %d", len(pin))
	}
	return nil
}

// pinString hands pin to piv-go, whose API takes strings, without a Go
// string copy: the string aliases the caller's buffer and is not kept past
// the call, so the caller's zeroing erases it. piv-go still copies the PIN
// into its padded VERIFY buffer and APDU (piv/piv.go encodePIN,
// piv/pcsc.go Transmit), which it does not zero and we cannot reach; those
// copies are left to the garbage collector.
func pinString(pin []byte) string {
	return unsafe.String(unsafe.SliceData(pin), len(pin))
}

// SlotPINPolicy reads the PIN policy of the key in slot from the token's
// metadata, so the caller knows whether to verify before each signature.
func (s *Session) SlotPINPolicy(slot Slot) (PINPolicy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(); err != nil {
		return PINPolicyUnknown, fmt.Errorf("read pin policy: %w", err)
	}
	ps, err := slot.piv()
	if err != nil {
		return PINPolicyUnknown, fmt.Errorf("read pin policy: %w", err)
	}
	v := s.yk.Version()
	if v.Major < 5 || (v.Major == 5 && v.Minor < 3) {
		return PINPolicyUnknown, nil
	}
	ki, err := s.yk.KeyInfo(ps)
	if err != nil {
		return PINPolicyUnknown, fmt.Errorf("read pin policy of slot %02x: %w", byte(slot), s.diagnose(err))
	}
	switch ki.PINPolicy {
	case piv.PINPolicyNever:
		return PINPolicyNever, nil
	case piv.PINPolicyOnce:
		return PINPolicyOnce, nil
	case piv.PINPolicyAlways:
		return PINPolicyAlways, nil
	}
	return PINPolicyUnknown, nil
}

// Sign signs digest with the key in slot: ECDSA P-256 or P-384 (ASN.1
// signature), or RSA 2048 with PKCS #1 v1.5, or PSS when opts is
// *rsa.PSSOptions. An Ed25519 key (firmware 5.7) signs digest itself as
// its message, with opts crypto.Hash(0) as crypto/ed25519 asks: pure
// Ed25519, the only form a PIV token makes. The signature verifies against
// the slot's certificate. A key whose PIN is not verified gives
// ErrPINRequired.
func (s *Session) Sign(ctx context.Context, slot Slot, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.sign(ctx, rand.Reader, slot, digest, opts)
}

func (s *Session) sign(ctx context.Context, rnd io.Reader, slot Slot, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	ps, err := slot.piv()
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	pub, err := s.publicKey(slot, ps)
	if err != nil {
		return nil, fmt.Errorf("sign with slot %02x: %w", byte(slot), err)
	}
	if err := checkSignable(pub, digest, opts); err != nil {
		return nil, fmt.Errorf("sign with slot %02x: %w", byte(slot), err)
	}
	// PINPolicyNever stops piv-go from looking for a PIN on its own (it
	// would call PINPrompt, or fail on an empty PIN): VerifyPIN is the only
	// way a PIN reaches the card, and a key that needs one answers 6982.
	priv, err := s.yk.PrivateKey(ps, pub, piv.KeyAuth{PINPolicy: piv.PINPolicyNever})
	if err != nil {
		return nil, fmt.Errorf("sign with slot %02x: %w", byte(slot), err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("sign with slot %02x: %w", byte(slot), ErrUnsupported)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	sig, err := signer.Sign(rnd, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("sign with slot %02x: %w", byte(slot), s.diagnose(err))
	}
	return sig, nil
}

// publicKey is the public key of the slot's certificate, read once per
// session: the signature must verify against that certificate.
func (s *Session) publicKey(slot Slot, ps piv.Slot) (crypto.PublicKey, error) {
	if pub, ok := s.keys[slot]; ok {
		return pub, nil
	}
	cert, err := s.yk.Certificate(ps)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", s.diagnose(err))
	}
	s.keys[slot] = cert.PublicKey
	return cert.PublicKey, nil
}

// maxEd25519Message bounds what is sent to the token for Ed25519, which
// signs the message itself: CMS signed attributes or a document digest
// are a few hundred bytes; a whole document would not fit the APDUs.
const maxEd25519Message = 4096

// checkSignable refuses keys and options the package does not sign with,
// before the card is asked.
func checkSignable(pub crypto.PublicKey, digest []byte, opts crypto.SignerOpts) error {
	if opts == nil {
		return fmt.Errorf("no signer options: %w", ErrUnsupported)
	}
	h := opts.HashFunc()
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("curve %s: %w", k.Curve.Params().Name, ErrUnsupported)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() != 2048 {
			return fmt.Errorf("rsa %d: %w", k.N.BitLen(), ErrUnsupported)
		}
		if h == 0 {
			return fmt.Errorf("rsa without a hash: %w", ErrUnsupported)
		}
	case ed25519.PublicKey:
		if h != 0 {
			return fmt.Errorf("ed25519 over a %v digest (ed25519ph): %w", h, ErrUnsupported)
		}
		if len(digest) > maxEd25519Message {
			return fmt.Errorf("ed25519 message of %d bytes, more than %d: %w", len(digest), maxEd25519Message, ErrUnsupported)
		}
	default:
		return fmt.Errorf("key type %T: %w", pub, ErrUnsupported)
	}
	if h != 0 && (!h.Available() || len(digest) != h.Size()) {
		return fmt.Errorf("digest of %d bytes for %v: %w", len(digest), h, ErrUnsupported)
	}
	if len(digest) == 0 {
		return fmt.Errorf("empty digest: %w", ErrUnsupported)
	}
	return nil
}

// Signer returns a crypto.Signer for the key in slot, bound to this session
// and its context; it fails with ErrSessionClosed once the session ends.
func (s *Session) Signer(slot Slot) (crypto.Signer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(); err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	ps, err := slot.piv()
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	pub, err := s.publicKey(slot, ps)
	if err != nil {
		return nil, fmt.Errorf("signer for slot %02x: %w", byte(slot), err)
	}
	return &sessionSigner{s: s, slot: slot, pub: pub}, nil
}

// sessionSigner is a crypto.Signer over one slot of an open session.
type sessionSigner struct {
	s    *Session
	slot Slot
	pub  crypto.PublicKey
}

var _ crypto.Signer = (*sessionSigner)(nil)

func (g *sessionSigner) Public() crypto.PublicKey { return g.pub }

func (g *sessionSigner) Sign(rnd io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return g.s.sign(g.s.ctx, rnd, g.slot, digest, opts)
}
