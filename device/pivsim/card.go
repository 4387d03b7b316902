package pivsim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Algorithm is a key algorithm of a slot; its value is the PIV algorithm
// identifier (SP 800-78-4 Table 6-2).
type Algorithm int

// Algorithms the card generates, imports and signs with.
const (
	AlgRSA2048 Algorithm = 0x07
	AlgECCP256 Algorithm = 0x11
	AlgECCP384 Algorithm = 0x14
	// AlgEd25519 is Yubico's Ed25519 (firmware 5.7 and later).
	AlgEd25519 Algorithm = 0xE0
)

func (a Algorithm) String() string {
	switch a {
	case AlgRSA2048:
		return "RSA2048"
	case AlgECCP256:
		return "ECCP256"
	case AlgECCP384:
		return "ECCP384"
	case AlgEd25519:
		return "ED25519"
	}
	return fmt.Sprintf("Algorithm(%#x)", int(a))
}

// PINPolicy is when a slot's key needs a verified PIN; its value is the
// Yubico wire byte (tag AA of GENERATE ASYMMETRIC KEY PAIR).
type PINPolicy int

// PIN policies. PINPolicyDefault takes the YubiKey default of the slot:
// always for 9c, never for 9e, once for the others.
const (
	PINPolicyDefault PINPolicy = 0
	PINPolicyNever   PINPolicy = 1
	PINPolicyOnce    PINPolicy = 2
	PINPolicyAlways  PINPolicy = 3
)

// TouchPolicy is when a slot's key needs a touch; its value is the Yubico
// wire byte (tag AB). Touch is simulated by the responder set with
// SetTouchResponder.
type TouchPolicy int

// Touch policies. TouchPolicyDefault is never, as on a YubiKey.
const (
	TouchPolicyDefault TouchPolicy = 0
	TouchPolicyNever   TouchPolicy = 1
	TouchPolicyAlways  TouchPolicy = 2
	TouchPolicyCached  TouchPolicy = 3
)

// Key references of the PIV key slots (SP 800-73-4 Part 1 Table 4b).
const (
	SlotAuthentication     byte = 0x9a
	SlotSignature          byte = 0x9c
	SlotKeyManagement      byte = 0x9d
	SlotCardAuthentication byte = 0x9e
	slotManagement         byte = 0x9b
	slotAttestation        byte = 0xf9
)

// DefaultManagementKey is the 3DES management key a YubiKey ships with.
var DefaultManagementKey = []byte{
	1, 2, 3, 4, 5, 6, 7, 8,
	1, 2, 3, 4, 5, 6, 7, 8,
	1, 2, 3, 4, 5, 6, 7, 8,
}

// FormFactorUSBAKeychain is the form factor code of a YubiKey 5 (NFC) on a
// key ring, the default.
const FormFactorUSBAKeychain byte = 0x01

// Defaults of a new card, those of a YubiKey 5 fresh from the factory.
const (
	DefaultPIN     = "123456"
	DefaultPUK     = "12345678"
	defaultRetries = 3
)

// Errors of the provisioning API.
var (
	ErrPresent   = errors.New("pivsim: card already inserted")
	ErrClosed    = errors.New("pivsim: card closed")
	ErrBadSlot   = errors.New("pivsim: not a key slot")
	ErrBadConfig = errors.New("pivsim: invalid config")
)

// Config is the factory state of a new card; zero fields take the YubiKey
// defaults.
type Config struct {
	// Serial is the YubiKey serial number (GET SERIAL).
	Serial uint32
	// Version is the firmware version (GET VERSION); default 5.4.3.
	Version [3]byte
	// PIN and PUK default to 123456 and 12345678; 6 to 8 bytes.
	PIN, PUK string
	// ManagementKey defaults to the YubiKey default 3DES key; a 16 or 32
	// byte key is AES-128/256, 24 bytes is 3DES (AES-192 via SetManagementKey).
	ManagementKey []byte
	// PINRetries and PUKRetries default to 3.
	PINRetries, PUKRetries int
	// FormFactor is the YubiKey form factor code the management
	// application and attestations report; default 1, USB-A keychain
	// (https://developers.yubico.com/yubikey-manager/Config_Reference.html#_form_factor).
	FormFactor byte
}

// slotKey is a private key held in a slot.
type slotKey struct {
	alg      Algorithm
	pin      PINPolicy
	touch    TouchPolicy
	imported bool
	signer   crypto.Signer
}

// Card is a software PIV card. Its methods are safe for concurrent use.
type Card struct {
	// mu guards the persistent state below, which APDUs and the
	// provisioning API both change.
	mu         sync.Mutex
	serial     uint32
	version    [3]byte
	pin, puk   []byte // padded to 8 bytes with FF (SP 800-73-4 Part 2 2.4.3)
	pinMax     int
	pinLeft    int
	pukMax     int
	pukLeft    int
	mgmtAlg    byte
	mgmtKey    []byte
	keys       map[byte]*slotKey
	objects    map[uint32][]byte
	path       string
	formFactor byte
	root       *attestRoot // made on first use: attest.go
	touchFn    func(ctx context.Context, slot byte) error
	hook       func(ins byte)

	// connMu guards the vpcd connection; it is never held while a command
	// runs, so Remove cannot wait on a command.
	connMu sync.Mutex
	cur    *insertion
	closed bool
	wg     sync.WaitGroup
}

// New makes a card in factory state from cfg.
func New(cfg Config) (*Card, error) {
	if cfg.Version == ([3]byte{}) {
		cfg.Version = [3]byte{5, 4, 3}
	}
	if cfg.PIN == "" {
		cfg.PIN = DefaultPIN
	}
	if cfg.PUK == "" {
		cfg.PUK = DefaultPUK
	}
	if cfg.ManagementKey == nil {
		cfg.ManagementKey = DefaultManagementKey
	}
	if cfg.FormFactor == 0 {
		cfg.FormFactor = FormFactorUSBAKeychain
	}
	if cfg.PINRetries == 0 {
		cfg.PINRetries = defaultRetries
	}
	if cfg.PUKRetries == 0 {
		cfg.PUKRetries = defaultRetries
	}
	pin, err := padPIN([]byte(cfg.PIN))
	if err != nil {
		return nil, fmt.Errorf("%w: pin: %w", ErrBadConfig, err)
	}
	puk, err := padPIN([]byte(cfg.PUK))
	if err != nil {
		return nil, fmt.Errorf("%w: puk: %w", ErrBadConfig, err)
	}
	if cfg.PINRetries < 1 || cfg.PINRetries > 15 || cfg.PUKRetries < 1 || cfg.PUKRetries > 15 {
		return nil, fmt.Errorf("%w: retries must be 1 to 15", ErrBadConfig)
	}
	alg, err := mgmtAlgForLength(len(cfg.ManagementKey))
	if err != nil {
		return nil, fmt.Errorf("%w: management key: %w", ErrBadConfig, err)
	}
	c := &Card{
		serial:     cfg.Serial,
		version:    cfg.Version,
		formFactor: cfg.FormFactor,
		pin:        pin,
		puk:        puk,
		pinMax:     cfg.PINRetries,
		pinLeft:    cfg.PINRetries,
		pukMax:     cfg.PUKRetries,
		pukLeft:    cfg.PUKRetries,
		mgmtAlg:    alg,
		mgmtKey:    bytes.Clone(cfg.ManagementKey),
		keys:       map[byte]*slotKey{},
		objects:    map[uint32][]byte{},
	}
	c.defaultObjects()
	return c, nil
}

func mgmtAlgForLength(n int) (byte, error) {
	switch n {
	case 16:
		return algAES128, nil
	case 24:
		return alg3DES, nil
	case 32:
		return algAES256, nil
	}
	return 0, fmt.Errorf("length %d, want 16, 24 or 32", n)
}

// padPIN pads a PIN or PUK of 6 to 8 bytes with FF (SP 800-73-4 Part 2
// 2.4.3).
func padPIN(p []byte) ([]byte, error) {
	if len(p) < 6 || len(p) > 8 {
		return nil, fmt.Errorf("length %d, want 6 to 8", len(p))
	}
	out := bytes.Repeat([]byte{0xFF}, 8)
	copy(out, p)
	return out, nil
}

// defaultObjects writes a CHUID and CCC so that OpenSC and
// yubico-piv-tool find a populated card, as `yubico-piv-tool -a set-chuid
// -a set-ccc` leaves one.
func (c *Card) defaultObjects() {
	var guid [16]byte
	_, _ = rand.Read(guid[:])
	// The FASC-N yubico-piv-tool's set-chuid writes (agency code 9999, a
	// non-federal issuer; SP 800-73-4 Part 1 3.1.2), with a random GUID.
	fascn, _ := hex.DecodeString("d4e739da739ced39ce739d836858210842108421c84210c3eb")
	var chuid []byte
	chuid = appendTLV(chuid, 0x30, fascn)
	chuid = appendTLV(chuid, 0x34, guid[:])
	chuid = appendTLV(chuid, 0x35, []byte("20991231"))
	chuid = appendTLV(chuid, 0x3E, nil)
	chuid = appendTLV(chuid, 0xFE, nil)
	c.objects[tagCHUID] = chuid

	ccc := appendTLV(nil, 0xF0, append([]byte{0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02}, guid[:14]...))
	for _, t := range []struct {
		tag uint32
		v   []byte
	}{{0xF1, []byte{0x21}}, {0xF2, []byte{0x21}}, {0xF3, nil}, {0xF4, []byte{0x00}}, {0xF5, []byte{0x10}},
		{0xF6, nil}, {0xF7, nil}, {0xFA, nil}, {0xFB, nil}, {0xFC, nil}, {0xFD, nil}, {0xFE, nil}} {
		ccc = appendTLV(ccc, t.tag, t.v)
	}
	c.objects[tagCCC] = ccc
}

// Serial returns the card's serial number.
func (c *Card) Serial() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serial
}

// PINRetries returns how many PIN tries are left.
func (c *Card) PINRetries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pinLeft
}

// SetTouchResponder sets what a touch does: f is called when a key with a
// touch policy is used and returns nil for a touch, or an error (the card
// then answers 6982) for none. ctx ends when the card is removed. The
// default responder touches at once.
func (c *Card) SetTouchResponder(f func(ctx context.Context, slot byte) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touchFn = f
}

// OnCommand sets a hook called with the INS byte before each command APDU
// is processed, from the card's connection goroutine. The hook may call
// Remove (the command is then dropped, as by a card pulled out mid-command)
// but not Close.
func (c *Card) OnCommand(f func(ins byte)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hook = f
}

func isKeySlot(slot byte) bool {
	switch slot {
	case SlotAuthentication, SlotSignature, SlotKeyManagement, SlotCardAuthentication:
		return true
	}
	return slot >= 0x82 && slot <= 0x95 // retired key management slots
}

// resolvePolicies applies the YubiKey per-slot defaults.
func resolvePolicies(slot byte, pin PINPolicy, touch TouchPolicy) (PINPolicy, TouchPolicy, error) {
	if pin == PINPolicyDefault {
		switch slot {
		case SlotSignature:
			pin = PINPolicyAlways
		case SlotCardAuthentication:
			pin = PINPolicyNever
		default:
			pin = PINPolicyOnce
		}
	}
	if touch == TouchPolicyDefault {
		touch = TouchPolicyNever
	}
	if pin < PINPolicyNever || pin > PINPolicyAlways || touch < TouchPolicyNever || touch > TouchPolicyCached {
		return 0, 0, swIncorrectData
	}
	return pin, touch, nil
}

func newSigner(alg Algorithm) (crypto.Signer, error) {
	switch alg {
	case AlgECCP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgECCP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case AlgRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case AlgEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, swIncorrectData
}

// supports reports whether the card's firmware knows alg: Ed25519 came
// with 5.7.
func (c *Card) supports(alg Algorithm) bool {
	if alg == AlgEd25519 {
		return c.version[0] > 5 || (c.version[0] == 5 && c.version[1] >= 7)
	}
	return true
}

func algOf(s crypto.Signer) (Algorithm, error) {
	switch k := s.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return AlgECCP256, nil
		case elliptic.P384():
			return AlgECCP384, nil
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() == 2048 {
			return AlgRSA2048, nil
		}
	case ed25519.PrivateKey:
		return AlgEd25519, nil
	}
	return 0, fmt.Errorf("pivsim: unsupported key %T", s)
}

// GenerateKey generates a key in slot directly, without APDUs, as a
// provisioning station would, and returns its public key.
func (c *Card) GenerateKey(slot byte, alg Algorithm, pin PINPolicy, touch TouchPolicy) (crypto.PublicKey, error) {
	if !c.supports(alg) {
		return nil, fmt.Errorf("pivsim: generate %v: not on firmware %d.%d.%d", alg, c.version[0], c.version[1], c.version[2])
	}
	s, err := newSigner(alg)
	if err != nil {
		return nil, fmt.Errorf("pivsim: generate %v: unsupported algorithm", alg)
	}
	if err := c.putKey(slot, s, pin, touch, false); err != nil {
		return nil, err
	}
	return s.Public(), nil
}

// ImportKey puts key into slot directly, without APDUs.
func (c *Card) ImportKey(slot byte, key crypto.Signer, pin PINPolicy, touch TouchPolicy) error {
	return c.putKey(slot, key, pin, touch, true)
}

func (c *Card) putKey(slot byte, s crypto.Signer, pin PINPolicy, touch TouchPolicy, imported bool) error {
	if !isKeySlot(slot) {
		return fmt.Errorf("%w: %#x", ErrBadSlot, slot)
	}
	alg, err := algOf(s)
	if err != nil {
		return err
	}
	pin, touch, err = resolvePolicies(slot, pin, touch)
	if err != nil {
		return fmt.Errorf("pivsim: slot %#x: invalid policy", slot)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys[slot] = &slotKey{alg: alg, pin: pin, touch: touch, imported: imported, signer: s}
	return c.persistLocked()
}

// SetCertificate stores a DER certificate in the object of slot, in the
// layout of SP 800-73-4 Part 1 Appendix A (70 cert, 71 CertInfo, FE LRC).
func (c *Card) SetCertificate(slot byte, der []byte) error {
	tag, ok := certObject(slot)
	if !ok {
		return fmt.Errorf("%w: %#x", ErrBadSlot, slot)
	}
	v := appendTLV(nil, 0x70, der)
	v = appendTLV(v, 0x71, []byte{0})
	v = appendTLV(v, 0xFE, nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.objects[tag] = v
	return c.persistLocked()
}

// Certificate returns the DER certificate stored for slot.
func (c *Card) Certificate(slot byte) ([]byte, error) {
	tag, ok := certObject(slot)
	if !ok {
		return nil, fmt.Errorf("%w: %#x", ErrBadSlot, slot)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ts, err := parseTLVs(c.objects[tag])
	if err != nil {
		return nil, fmt.Errorf("pivsim: certificate object %x: %w", tag, err)
	}
	der, ok := findTLV(ts, 0x70)
	if !ok {
		return nil, fmt.Errorf("pivsim: no certificate in slot %#x", slot)
	}
	return bytes.Clone(der), nil
}

// persistLocked saves the state when the card has a path; c.mu is held.
func (c *Card) persistLocked() error {
	if c.path == "" {
		return nil
	}
	return c.saveLocked(c.path)
}

// touch asks the responder for a touch.
func (c *Card) touch(ctx context.Context, slot byte) error {
	c.mu.Lock()
	f := c.touchFn
	c.mu.Unlock()
	if f == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second) // a YubiKey waits 15 s for a touch
	defer cancel()
	return f(ctx, slot)
}
