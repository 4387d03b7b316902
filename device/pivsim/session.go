package pivsim

import (
	"context"
	"crypto/subtle"
	"time"
)

// session is the volatile state of one powered-on card: what a power cycle
// or a reset wipes (SP 800-73-4 Part 2 3.2.1: the PIN security status is
// reset on a card reset).
type session struct {
	selected bool
	// mgmt is true while the YubiKey management application is selected
	// (mgmt.go) instead of PIV.
	mgmt        bool
	pinVerified bool
	mgmtAuthed  bool
	// witness is the plain witness of a pending management key mutual
	// authentication; challenge the one of an external authentication.
	witness   []byte
	challenge []byte
	// chain collects the data of a command chain (ISO/IEC 7816-4 5.1.1).
	chainHead [3]byte // INS P1 P2 of the chain
	chain     []byte
	chaining  bool
	// pending holds the rest of a long response for GET RESPONSE.
	pending      []byte
	touchedUntil time.Time
}

func (s *session) reset() { *s = session{} }

// Limits of the card's buffers: a YubiKey 5 takes objects up to 3052 bytes;
// a chain longer than an object plus its header is refused.
const (
	maxObject = 3052
	maxChain  = maxObject + 64
	shortNe   = 256
)

// process answers one command APDU with response data and SW1 SW2,
// managing command chaining and GET RESPONSE around the handlers.
func (c *Card) process(ctx context.Context, s *session, raw []byte) []byte {
	cmd, err := parseCommand(raw)
	if err != nil {
		s.pending = nil
		return sw(nil, swWrongLength)
	}
	// CLA 00 or 10 (chaining); secure messaging and logical channels are
	// not supported by the PIV card application (SP 800-73-4 Part 2 3).
	if cmd.cla&^0x10 != 0 {
		s.pending = nil
		return sw(nil, swCLANotSupported)
	}
	if cmd.ins == insGetResponse {
		return c.getResponse(s, cmd)
	}
	s.pending = nil

	head := [3]byte{cmd.ins, cmd.p1, cmd.p2}
	if s.chaining && s.chainHead != head {
		s.chaining, s.chain = false, nil
	}
	if cmd.cla&0x10 != 0 {
		if len(s.chain)+len(cmd.data) > maxChain {
			s.chaining, s.chain = false, nil
			return sw(nil, swWrongLength)
		}
		s.chaining, s.chainHead = true, head
		s.chain = append(s.chain, cmd.data...)
		return sw(nil, swOK)
	}
	if s.chaining {
		cmd.data = append(s.chain, cmd.data...)
		s.chaining, s.chain = false, nil
	}

	data, err := c.dispatch(ctx, s, cmd)
	st := swOK
	if err != nil {
		if e, ok := err.(status); ok {
			st = e
		} else {
			st = swMemoryFailure
		}
		data = nil
	}
	if cmd.extended || len(data) <= shortNe {
		return sw(data, st)
	}
	s.pending = data[shortNe:]
	return sw(data[:shortNe], moreStatus(len(s.pending)))
}

// moreStatus is 61xx: xx more bytes wait for GET RESPONSE, 00 for 256 or
// more (ISO/IEC 7816-4 5.1.3).
func moreStatus(n int) status {
	if n >= shortNe {
		return 0x6100
	}
	return status(0x6100 | uint16(n))
}

func (c *Card) getResponse(s *session, cmd command) []byte {
	if cmd.p1 != 0 || cmd.p2 != 0 {
		return sw(nil, swIncorrectP1P2)
	}
	if s.pending == nil {
		return sw(nil, swConditions)
	}
	n := shortNe
	if cmd.ne > 0 && cmd.ne < n {
		n = cmd.ne
	}
	if n >= len(s.pending) {
		out := s.pending
		s.pending = nil
		return sw(out, swOK)
	}
	out := s.pending[:n]
	s.pending = s.pending[n:]
	return sw(out, moreStatus(len(s.pending)))
}

func sw(data []byte, st status) []byte {
	out := make([]byte, 0, len(data)+2)
	out = append(out, data...)
	return append(out, byte(st>>8), byte(st))
}

// Instructions (SP 800-73-4 Part 2 Table 3 and the Yubico extensions).
const (
	insVerify        = 0x20
	insChangeRef     = 0x24
	insResetRetry    = 0x2C
	insGenerate      = 0x47
	insAuthenticate  = 0x87
	insSelect        = 0xA4
	insGetResponse   = 0xC0
	insGetData       = 0xCB
	insPutData       = 0xDB
	insGetMetadata   = 0xF7
	insGetSerial     = 0xF8
	insAttest        = 0xF9
	insSetPINRetries = 0xFA
	insReset         = 0xFB
	insGetVersion    = 0xFD
	insImportKey     = 0xFE
	insSetMgmtKey    = 0xFF
)

func (c *Card) dispatch(ctx context.Context, s *session, cmd command) ([]byte, error) {
	if cmd.ins == insSelect {
		c.mu.Lock()
		defer c.mu.Unlock()
		if isManagementAID(cmd) {
			s.reset()
			s.mgmt = true
			return c.selectManagement(), nil
		}
		return c.selectApp(s, cmd)
	}
	if s.mgmt {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.management(cmd)
	}
	if !s.selected {
		// No application answers; the card's default is silence.
		return nil, swINSNotSupported
	}
	if cmd.ins == insAuthenticate && cmd.p2 != slotManagement {
		// Signing may wait for a touch and must not hold the lock.
		return c.authenticateKey(ctx, s, cmd)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch cmd.ins {
	case insGetVersion:
		return c.version[:], nil
	case insGetSerial:
		return []byte{byte(c.serial >> 24), byte(c.serial >> 16), byte(c.serial >> 8), byte(c.serial)}, nil
	case insGetMetadata:
		return c.metadata(cmd)
	case insVerify:
		return c.verify(s, cmd)
	case insChangeRef:
		return c.changeReference(s, cmd)
	case insResetRetry:
		return c.resetRetry(cmd)
	case insGetData:
		return c.getData(s, cmd)
	case insPutData:
		return c.putData(s, cmd)
	case insAuthenticate:
		return c.authenticateManagement(s, cmd)
	case insGenerate:
		return c.generate(s, cmd)
	case insImportKey:
		return c.importKey(s, cmd)
	case insSetMgmtKey:
		return c.setManagementKey(s, cmd)
	case insAttest:
		return c.attest(cmd)
	case insSetPINRetries:
		return c.setPINRetries(s, cmd)
	case insReset:
		return c.reset(s, cmd)
	}
	return nil, swINSNotSupported
}

var (
	aidPIV = []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}
	// apt is the application property template (SP 800-73-4 Part 2 3.1.1,
	// Table 3), byte for byte what a YubiKey 5 answers.
	apt = []byte{0x61, 0x11, 0x4F, 0x06, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
		0x79, 0x07, 0x4F, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08}
)

// selectApp is SELECT (SP 800-73-4 Part 2 3.1.1): P1 04 by AID, with the
// full AID or a right-truncated one of at least the RID+PIX prefix.
func (c *Card) selectApp(s *session, cmd command) ([]byte, error) {
	if cmd.p1 != 0x04 || cmd.p2 != 0x00 {
		return nil, swIncorrectP1P2
	}
	if len(cmd.data) < 5 || len(cmd.data) > len(aidPIV) || subtle.ConstantTimeCompare(cmd.data, aidPIV[:len(cmd.data)]) != 1 {
		// Selecting another application leaves the PIV application.
		s.reset()
		return nil, swNotFound
	}
	if !s.selected {
		s.reset()
		s.selected = true
	}
	return apt, nil
}
