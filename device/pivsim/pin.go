package pivsim

import (
	"bytes"
	"crypto/subtle"
)

// Key references of the PIN and PUK (SP 800-73-4 Part 2 Table 4).
const (
	refPIN = 0x80
	refPUK = 0x81
)

// verify is VERIFY (SP 800-73-4 Part 2 3.2.1): with data it checks the PIN;
// without data it reports the verified state (9000) or the tries left
// (63Cx); P1 FF resets the verified state.
func (c *Card) verify(s *session, cmd command) ([]byte, error) {
	if cmd.p1 == 0xFF {
		if cmd.p2 != refPIN || len(cmd.data) != 0 {
			return nil, swIncorrectP1P2
		}
		s.pinVerified = false
		return nil, nil
	}
	if cmd.p1 != 0x00 {
		return nil, swIncorrectP1P2
	}
	if cmd.p2 != refPIN {
		// A YubiKey takes the PUK only in RESET RETRY COUNTER and CHANGE
		// REFERENCE DATA, and has no global PIN.
		return nil, swRefNotFound
	}
	if len(cmd.data) == 0 {
		if c.pinLeft == 0 {
			return nil, swAuthBlocked
		}
		if s.pinVerified {
			return nil, nil
		}
		return nil, swRetries(c.pinLeft)
	}
	if len(cmd.data) != 8 {
		return nil, swIncorrectData
	}
	if err := c.checkRef(&c.pinLeft, c.pinMax, c.pin, cmd.data); err != nil {
		s.pinVerified = false
		return nil, err
	}
	s.pinVerified = true
	return nil, nil
}

// checkRef compares a presented PIN or PUK with the stored one, counting
// down *left on a mismatch and restoring it to max on a match. Every
// change of the counter is saved before the answer, so pulling the card
// out cannot buy an extra try.
func (c *Card) checkRef(left *int, max int, want, got []byte) error {
	if *left == 0 {
		return swAuthBlocked
	}
	if subtle.ConstantTimeCompare(want, got) != 1 {
		*left--
		if err := c.persistLocked(); err != nil {
			return swMemoryFailure
		}
		return swRetries(*left)
	}
	if *left != max {
		*left = max
		if err := c.persistLocked(); err != nil {
			return swMemoryFailure
		}
	}
	return nil
}

// validNewPIN checks a new padded PIN or PUK: 6 to 8 bytes, padding only
// at the end (SP 800-73-4 Part 2 2.4.3).
func validNewPIN(p []byte) bool {
	n := bytes.IndexByte(p, 0xFF)
	if n < 0 {
		n = len(p)
	}
	if n < 6 {
		return false
	}
	for _, b := range p[n:] {
		if b != 0xFF {
			return false
		}
	}
	return true
}

// changeReference is CHANGE REFERENCE DATA (SP 800-73-4 Part 2 3.2.2) for
// the PIN (80) and the PUK (81): data is old || new, each 8 bytes padded.
func (c *Card) changeReference(s *session, cmd command) ([]byte, error) {
	if cmd.p1 != 0x00 {
		return nil, swIncorrectP1P2
	}
	var ref *[]byte
	var left *int
	var max int
	switch cmd.p2 {
	case refPIN:
		ref, left, max = &c.pin, &c.pinLeft, c.pinMax
	case refPUK:
		ref, left, max = &c.puk, &c.pukLeft, c.pukMax
	default:
		return nil, swRefNotFound
	}
	if len(cmd.data) != 16 {
		return nil, swIncorrectData
	}
	if err := c.checkRef(left, max, *ref, cmd.data[:8]); err != nil {
		if cmd.p2 == refPIN {
			s.pinVerified = false
		}
		return nil, err
	}
	if !validNewPIN(cmd.data[8:]) {
		return nil, swIncorrectData
	}
	*ref = bytes.Clone(cmd.data[8:])
	if err := c.persistLocked(); err != nil {
		return nil, swMemoryFailure
	}
	return nil, nil
}

// resetRetry is RESET RETRY COUNTER (SP 800-73-4 Part 2 3.2.3): the PUK
// unblocks the PIN and sets a new one; data is PUK || new PIN.
func (c *Card) resetRetry(cmd command) ([]byte, error) {
	if cmd.p1 != 0x00 || cmd.p2 != refPIN {
		return nil, swIncorrectP1P2
	}
	if len(cmd.data) != 16 {
		return nil, swIncorrectData
	}
	if err := c.checkRef(&c.pukLeft, c.pukMax, c.puk, cmd.data[:8]); err != nil {
		return nil, err
	}
	if !validNewPIN(cmd.data[8:]) {
		return nil, swIncorrectData
	}
	c.pin = bytes.Clone(cmd.data[8:])
	c.pinLeft = c.pinMax
	if err := c.persistLocked(); err != nil {
		return nil, swMemoryFailure
	}
	return nil, nil
}

// setPINRetries is the Yubico SET PIN RETRIES (INS FA): P1 PIN tries, P2
// PUK tries; it needs the management key and the PIN, and puts PIN and PUK
// back to their defaults.
func (c *Card) setPINRetries(s *session, cmd command) ([]byte, error) {
	if !s.mgmtAuthed || !s.pinVerified {
		return nil, swSecurityStatus
	}
	if cmd.p1 == 0 || cmd.p2 == 0 || cmd.p1 > 15 || cmd.p2 > 15 {
		return nil, swIncorrectP1P2
	}
	c.pinMax, c.pinLeft = int(cmd.p1), int(cmd.p1)
	c.pukMax, c.pukLeft = int(cmd.p2), int(cmd.p2)
	c.pin, _ = padPIN([]byte(DefaultPIN))
	c.puk, _ = padPIN([]byte(DefaultPUK))
	if err := c.persistLocked(); err != nil {
		return nil, swMemoryFailure
	}
	return nil, nil
}

// reset is the Yubico RESET (INS FB): only when both PIN and PUK are
// blocked, it wipes the application back to factory state.
func (c *Card) reset(s *session, cmd command) ([]byte, error) {
	if cmd.p1 != 0 || cmd.p2 != 0 {
		return nil, swIncorrectP1P2
	}
	if c.pinLeft != 0 || c.pukLeft != 0 {
		return nil, swConditions
	}
	c.pin, _ = padPIN([]byte(DefaultPIN))
	c.puk, _ = padPIN([]byte(DefaultPUK))
	c.pinMax, c.pinLeft, c.pukMax, c.pukLeft = defaultRetries, defaultRetries, defaultRetries, defaultRetries
	c.mgmtAlg, c.mgmtKey = alg3DES, bytes.Clone(DefaultManagementKey)
	// The attestation key and certificate survive a reset, as on a
	// YubiKey: they are the factory's, not the user's.
	att, attObj := c.keys[slotAttestation], c.objects[tagAttestationCrt]
	c.keys = map[byte]*slotKey{}
	c.objects = map[uint32][]byte{}
	c.defaultObjects()
	if att != nil && attObj != nil {
		c.keys[slotAttestation], c.objects[tagAttestationCrt] = att, attObj
	}
	s.pinVerified, s.mgmtAuthed = false, false
	if err := c.persistLocked(); err != nil {
		return nil, swMemoryFailure
	}
	return nil, nil
}

// metadata is the Yubico GET METADATA (INS F7, firmware 5.3+,
// https://docs.yubico.com/yesdk/users-manual/application-piv/apdu/metadata.html):
// 01 algorithm, 02 policies, 03 origin, 04 public key, 05 default, 06 tries.
func (c *Card) metadata(cmd command) ([]byte, error) {
	if c.version[0] < 5 || (c.version[0] == 5 && c.version[1] < 3) {
		// Firmware before 5.3 has no GET METADATA.
		return nil, swINSNotSupported
	}
	if cmd.p1 != 0 {
		return nil, swIncorrectP1P2
	}
	var out []byte
	switch p2 := cmd.p2; {
	case p2 == refPIN || p2 == refPUK:
		ref, def, max, left := c.pin, DefaultPIN, c.pinMax, c.pinLeft
		if p2 == refPUK {
			ref, def, max, left = c.puk, DefaultPUK, c.pukMax, c.pukLeft
		}
		d, _ := padPIN([]byte(def))
		out = appendTLV(out, 0x01, []byte{0xFF})
		out = appendTLV(out, 0x05, []byte{boolByte(bytes.Equal(ref, d))})
		out = appendTLV(out, 0x06, []byte{byte(max), byte(left)})
	case p2 == slotManagement:
		out = appendTLV(out, 0x01, []byte{c.mgmtAlg})
		out = appendTLV(out, 0x02, []byte{0x00, byte(TouchPolicyNever)})
		out = appendTLV(out, 0x05, []byte{boolByte(bytes.Equal(c.mgmtKey, DefaultManagementKey))})
	case isKeySlot(p2):
		k := c.keys[p2]
		if k == nil {
			return nil, swNotFound
		}
		origin := byte(0x01)
		if k.imported {
			origin = 0x02
		}
		out = appendTLV(out, 0x01, []byte{byte(k.alg)})
		out = appendTLV(out, 0x02, []byte{byte(k.pin), byte(k.touch)})
		out = appendTLV(out, 0x03, []byte{origin})
		out = appendTLV(out, 0x04, publicTLV(k.signer.Public()))
	default:
		return nil, swRefNotFound
	}
	return out, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
