package pivsim

import "bytes"

// Data object tags (SP 800-73-4 Part 1 Table 3; Yubico objects from
// https://docs.yubico.com/yesdk/users-manual/application-piv/apdu/get-data.html).
const (
	tagDiscovery      = 0x7E
	tagBIT            = 0x7F61
	tagCCC            = 0x5FC107
	tagCHUID          = 0x5FC102
	tagPrinted        = 0x5FC109 // Yubico keeps its PIN-protected data here
	tagCertPIVAuth    = 0x5FC105
	tagCertSignature  = 0x5FC10A
	tagCertKeyMgmt    = 0x5FC10B
	tagCertCardAuth   = 0x5FC101
	tagCertRetired1   = 0x5FC10D // retired slots 82..95 use 5FC10D..5FC120
	tagKeyHistory     = 0x5FC10C
	tagAdminData      = 0x5FFF00 // Yubico admin data
	tagAttestationCrt = 0x5FFF01
)

// discovery is the Discovery Object (SP 800-73-4 Part 1 3.3.2): the PIV AID
// and a PIN usage policy of 40 00 (PIV PIN only, no global PIN).
var discovery = []byte{0x7E, 0x12, 0x4F, 0x0B, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
	0x5F, 0x2F, 0x02, 0x40, 0x00}

// certObject maps a key slot to the object holding its certificate.
func certObject(slot byte) (uint32, bool) {
	switch slot {
	case SlotAuthentication:
		return tagCertPIVAuth, true
	case SlotSignature:
		return tagCertSignature, true
	case SlotKeyManagement:
		return tagCertKeyMgmt, true
	case SlotCardAuthentication:
		return tagCertCardAuth, true
	case slotAttestation:
		return tagAttestationCrt, true
	}
	if slot >= 0x82 && slot <= 0x95 {
		return tagCertRetired1 + uint32(slot-0x82), true
	}
	return 0, false
}

// writable reports whether PUT DATA may write an object: the PIV objects
// 5FC101..5FC123 and Yubico's 5FFF00..5FFF15 (the discovery object and the
// BIT are fixed).
func writable(tag uint32) bool {
	return (tag >= 0x5FC101 && tag <= 0x5FC123) || (tag >= 0x5FFF00 && tag <= 0x5FFF15)
}

// getData is GET DATA (SP 800-73-4 Part 2 3.1.2): P1 P2 3F FF, data 5C with
// the tag; the answer is the object in a 53 template (the discovery object
// comes in its own 7E template). The printed information object, where a
// YubiKey keeps PIN-protected data, needs the PIN.
func (c *Card) getData(s *session, cmd command) ([]byte, error) {
	if cmd.p1 != 0x3F || cmd.p2 != 0xFF {
		return nil, swIncorrectP1P2
	}
	t, rest, err := parseTLV(cmd.data)
	if err != nil || t.tag != 0x5C || len(rest) != 0 {
		return nil, swIncorrectData
	}
	tag, err := objectTag(t.value)
	if err != nil {
		return nil, err
	}
	switch {
	case tag == tagDiscovery:
		return bytes.Clone(discovery), nil
	case tag == tagPrinted && !s.pinVerified:
		return nil, swSecurityStatus
	case tag != tagBIT && !writable(tag):
		return nil, swNotFound
	}
	v, ok := c.objects[tag]
	if !ok {
		return nil, swNotFound
	}
	return appendTLV(nil, 0x53, v), nil
}

// putData is PUT DATA (SP 800-73-4 Part 2 3.3.1): data is 5C tag then 53
// contents; it needs the management key. An empty 53 deletes the object,
// as on a YubiKey.
func (c *Card) putData(s *session, cmd command) ([]byte, error) {
	if cmd.p1 != 0x3F || cmd.p2 != 0xFF {
		return nil, swIncorrectP1P2
	}
	if !s.mgmtAuthed {
		return nil, swSecurityStatus
	}
	t, rest, err := parseTLV(cmd.data)
	if err != nil || t.tag != 0x5C {
		return nil, swIncorrectData
	}
	tag, err := objectTag(t.value)
	if err != nil {
		return nil, err
	}
	if !writable(tag) {
		return nil, swIncorrectData
	}
	body, tail, err := parseTLV(rest)
	if err != nil || body.tag != 0x53 || len(tail) != 0 {
		return nil, swIncorrectData
	}
	if len(body.value) > maxObject {
		return nil, swNoMemory
	}
	if len(body.value) == 0 {
		delete(c.objects, tag)
	} else {
		c.objects[tag] = bytes.Clone(body.value)
	}
	if err := c.persistLocked(); err != nil {
		return nil, swMemoryFailure
	}
	return nil, nil
}
