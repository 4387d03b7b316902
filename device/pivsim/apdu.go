package pivsim

import (
	"errors"
	"fmt"
)

// status is an ISO/IEC 7816-4 status word returned as the outcome of a
// command; handlers return it as an error so the dispatcher maps every
// failure to exactly one status word.
type status uint16

func (s status) Error() string { return fmt.Sprintf("status %04X", uint16(s)) }

// Status words used by SP 800-73-4 Part 2 Table 6 and the Yubico extensions.
const (
	swOK               status = 0x9000
	swMemoryFailure    status = 0x6581
	swWrongLength      status = 0x6700
	swSecurityStatus   status = 0x6982
	swAuthBlocked      status = 0x6983
	swConditions       status = 0x6985
	swIncorrectData    status = 0x6A80
	swFuncNotSupported status = 0x6A81
	swNotFound         status = 0x6A82
	swNoMemory         status = 0x6A84
	swIncorrectP1P2    status = 0x6A86
	swRefNotFound      status = 0x6A88
	swINSNotSupported  status = 0x6D00
	swCLANotSupported  status = 0x6E00
)

// swRetries is 63Cx: verification failed, x tries left (SP 800-73-4 Part 2
// 3.2.1).
func swRetries(n int) status { return status(0x63C0 | uint16(min(max(n, 0), 15))) }

// command is a parsed command APDU (ISO/IEC 7816-4 5.1).
type command struct {
	cla, ins, p1, p2 byte
	data             []byte
	// ne is the maximum response length the host expects, 0 when absent.
	ne       int
	extended bool
}

var errAPDULength = errors.New("malformed apdu length")

// parseCommand decodes the four cases of short and extended APDUs
// (ISO/IEC 7816-4 5.1, Table 1).
func parseCommand(b []byte) (command, error) {
	if len(b) < 4 {
		return command{}, errAPDULength
	}
	c := command{cla: b[0], ins: b[1], p1: b[2], p2: b[3]}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
		return c, nil
	case len(body) == 1: // case 2 short
		c.ne = int(body[0])
		if c.ne == 0 {
			c.ne = 256
		}
		return c, nil
	case body[0] != 0: // case 3 or 4 short
		lc := int(body[0])
		rest := body[1:]
		if len(rest) != lc && len(rest) != lc+1 {
			return command{}, errAPDULength
		}
		c.data = rest[:lc]
		if len(rest) == lc+1 {
			c.ne = int(rest[lc])
			if c.ne == 0 {
				c.ne = 256
			}
		}
		return c, nil
	}
	// Extended length: first body byte 00.
	c.extended = true
	if len(body) < 3 {
		return command{}, errAPDULength
	}
	n := int(body[1])<<8 | int(body[2])
	if len(body) == 3 { // case 2 extended
		c.ne = n
		if n == 0 {
			c.ne = 65536
		}
		return c, nil
	}
	rest := body[3:]
	if n == 0 || (len(rest) != n && len(rest) != n+2) {
		return command{}, errAPDULength
	}
	c.data = rest[:n]
	if len(rest) == n+2 {
		c.ne = int(rest[n])<<8 | int(rest[n+1])
		if c.ne == 0 {
			c.ne = 65536
		}
	}
	return c, nil
}

// tlv is one BER-TLV data object (ISO/IEC 7816-4 5.2, SP 800-73-4 Part 2
// 3.3 uses the same encoding).
type tlv struct {
	tag   uint32
	value []byte
}

var errTLV = errors.New("malformed tlv")

// parseTLV reads one BER-TLV object with a tag of up to three bytes and a
// length of up to three bytes (82 xx xx), which covers every PIV object.
func parseTLV(b []byte) (t tlv, rest []byte, err error) {
	if len(b) < 2 {
		return tlv{}, nil, errTLV
	}
	i := 0
	tag := uint32(b[i])
	i++
	if b[0]&0x1F == 0x1F {
		for {
			if i >= len(b) || i >= 3 {
				return tlv{}, nil, errTLV
			}
			tag = tag<<8 | uint32(b[i])
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return tlv{}, nil, errTLV
	}
	l := int(b[i])
	i++
	switch {
	case l < 0x80:
	case l == 0x81:
		if i+1 > len(b) {
			return tlv{}, nil, errTLV
		}
		l = int(b[i])
		i++
	case l == 0x82:
		if i+2 > len(b) {
			return tlv{}, nil, errTLV
		}
		l = int(b[i])<<8 | int(b[i+1])
		i += 2
	default:
		return tlv{}, nil, errTLV
	}
	if l > len(b)-i {
		return tlv{}, nil, errTLV
	}
	return tlv{tag: tag, value: b[i : i+l]}, b[i+l:], nil
}

// parseTLVs reads a sequence of BER-TLV objects that fills b exactly.
func parseTLVs(b []byte) ([]tlv, error) {
	var out []tlv
	for len(b) > 0 {
		t, rest, err := parseTLV(b)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
		b = rest
	}
	return out, nil
}

// findTLV returns the value of the first object with tag, and whether there
// was one.
func findTLV(ts []tlv, tag uint32) ([]byte, bool) {
	for _, t := range ts {
		if t.tag == tag {
			return t.value, true
		}
	}
	return nil, false
}

// appendTLV appends one BER-TLV object with the shortest length encoding.
func appendTLV(dst []byte, tag uint32, value []byte) []byte {
	switch {
	case tag > 0xFFFF:
		dst = append(dst, byte(tag>>16), byte(tag>>8), byte(tag))
	case tag > 0xFF:
		dst = append(dst, byte(tag>>8), byte(tag))
	default:
		dst = append(dst, byte(tag))
	}
	n := len(value)
	switch {
	case n < 0x80:
		dst = append(dst, byte(n))
	case n <= 0xFF:
		dst = append(dst, 0x81, byte(n))
	default:
		dst = append(dst, 0x82, byte(n>>8), byte(n))
	}
	return append(dst, value...)
}

// objectTag reads the tag list 5C of GET DATA and PUT DATA (SP 800-73-4
// Part 2 3.1.2): one tag of one to three bytes.
func objectTag(v []byte) (uint32, error) {
	if len(v) < 1 || len(v) > 3 {
		return 0, swIncorrectData
	}
	var tag uint32
	for _, b := range v {
		tag = tag<<8 | uint32(b)
	}
	return tag, nil
}
