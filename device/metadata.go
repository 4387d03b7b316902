package device

import (
	"context"
	"errors"
	"fmt"
)

// piv-go v2.6.0 cannot read the metadata of the PIN, the PUK and the
// management key: its KeyInfo refuses their GET METADATA answers (algorithm
// FF) and ignores the "default value" (05) and "retries" (06) objects. This
// file reads them itself on a short connection of its own, made while no
// piv-go connection is open (piv-go connects exclusively) and under the card
// lock, as every card operation is. See GET METADATA in
// https://docs.yubico.com/yesdk/users-manual/application-piv/commands.html
// and https://docs.yubico.com/yesdk/users-manual/application-piv/apdu/metadata.html.

// Key references of GET METADATA's P2.
const (
	refPIN           byte = 0x80
	refPUK           byte = 0x81
	refManagementKey byte = 0x9b
)

// Metadata object tags.
const (
	mdAlgorithm = 0x01
	mdPolicy    = 0x02
	mdOrigin    = 0x03
	mdPublicKey = 0x04
	mdDefault   = 0x05
	mdRetries   = 0x06
)

// errNoMetadata means the card does not know GET METADATA (firmware before
// 5.3 answers 6D00, or 6A81 for a reference it has no metadata for).
var errNoMetadata = errors.New("card has no metadata")

// refMetadata is what GET METADATA says of a PIN, the PUK or the management key.
type refMetadata struct {
	algorithm byte
	// isDefault is the 05 object: the reference still holds its factory value.
	isDefault  bool
	hasDefault bool
	// retries are the 06 object: total attempts and attempts left.
	retriesTotal, retriesLeft int
	hasRetries                bool
}

// credentials is the metadata of the three factory credentials.
type credentials struct {
	known         bool
	pin, puk, mgm refMetadata
}

// defaults turns the metadata into the caller's Defaults.
func (c credentials) defaults() Defaults {
	if !c.known {
		return Defaults{}
	}
	return Defaults{Known: true, PIN: c.pin.isDefault, PUK: c.puk.isDefault, ManagementKey: c.mgm.isDefault}
}

// pukRetries is the PUK attempts left, -1 when unknown.
func (c credentials) pukRetries() int {
	if !c.known || !c.puk.hasRetries {
		return -1
	}
	return c.puk.retriesLeft
}

// readCredentials reads the PIN, PUK and management key metadata of the
// token in reader on a connection of its own. The caller holds the card lock
// and has no piv-go connection open. A card without metadata gives
// credentials with known false.
func (t *Tokens) readCredentials(ctx context.Context, reader string) (credentials, error) {
	var creds credentials
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
		// Leave the card as it is: whoever connects next selects PIV again.
		defer h.disconnect(false)
		creds, err = readCredentialsOn(h)
		return err
	})
	if err != nil {
		return credentials{}, fmt.Errorf("read pin, puk and management key metadata: %w", err)
	}
	return creds, nil
}

// apduTransmitter sends one APDU and returns response data and status word.
type apduTransmitter interface {
	transmit(apdu []byte) ([]byte, error)
}

var _ apduTransmitter = (*cardHandle)(nil)

// selectPIV selects the PIV application by its RID and PIX prefix, as
// piv-go and yubico-piv-tool do (SP 800-73-4 Part 2 §3.1.1).
var selectPIV = []byte{0x00, 0xa4, 0x04, 0x00, 0x05, 0xa0, 0x00, 0x00, 0x03, 0x08}

func readCredentialsOn(h apduTransmitter) (credentials, error) {
	if _, err := command(h, selectPIV); err != nil {
		return credentials{}, fmt.Errorf("select piv: %w", err)
	}
	var creds credentials
	for _, r := range []struct {
		ref byte
		md  *refMetadata
	}{{refPIN, &creds.pin}, {refPUK, &creds.puk}, {refManagementKey, &creds.mgm}} {
		resp, err := command(h, []byte{0x00, 0xf7, 0x00, r.ref, 0x00})
		if errors.Is(err, errNoMetadata) {
			return credentials{}, nil
		}
		if err != nil {
			return credentials{}, fmt.Errorf("get metadata %02x: %w", r.ref, err)
		}
		md, err := parseMetadata(resp)
		if err != nil {
			return credentials{}, fmt.Errorf("get metadata %02x: %w", r.ref, err)
		}
		if !md.hasDefault || (r.ref != refManagementKey && !md.hasRetries) {
			return credentials{}, fmt.Errorf("get metadata %02x: default value or retries missing", r.ref)
		}
		*r.md = md
	}
	creds.known = true
	return creds, nil
}

// statusError is a status word other than 9000 from a command this package
// sends itself; it satisfies the statusWord interface classify knows.
type statusError uint16

func (e statusError) Error() string  { return fmt.Sprintf("card status %04x", uint16(e)) }
func (e statusError) Status() uint16 { return uint16(e) }

// command sends apdu and returns the response data of a 9000 answer. 6D00
// (instruction not supported), 6E00 (class not supported) and every 6Axx
// (function, parameters or reference not supported: what PIV cards of
// other makers answer to a command that is Yubico's extension) are
// errNoMetadata, so such a card is still usable, its defaults unknown; a
// metadata answer fits one response, so 61xx is an error.
func command(h apduTransmitter, apdu []byte) ([]byte, error) {
	resp, err := h.transmit(apdu)
	if err != nil {
		return nil, err
	}
	if len(resp) < 2 {
		return nil, fmt.Errorf("response of %d bytes, want a status word", len(resp))
	}
	data, sw := resp[:len(resp)-2], uint16(resp[len(resp)-2])<<8|uint16(resp[len(resp)-1])
	switch {
	case sw == 0x9000:
		return data, nil
	case sw == 0x6d00, sw == 0x6e00, sw&0xff00 == 0x6a00:
		return nil, fmt.Errorf("%w (%w)", errNoMetadata, statusError(sw))
	}
	return nil, statusError(sw)
}

// parseMetadata decodes a GET METADATA answer strictly: BER-TLV with
// one-byte tags and definite lengths of at most two bytes, no trailing
// bytes, no object twice, and the objects this package reads with their
// exact sizes and values. Objects of later firmware are skipped.
func parseMetadata(b []byte) (refMetadata, error) {
	var md refMetadata
	seen := map[byte]bool{}
	for len(b) > 0 {
		tag, value, rest, err := nextTLV(b)
		if err != nil {
			return refMetadata{}, err
		}
		b = rest
		if seen[tag] {
			return refMetadata{}, fmt.Errorf("metadata object %02x twice", tag)
		}
		seen[tag] = true
		switch tag {
		case mdAlgorithm:
			if len(value) != 1 {
				return refMetadata{}, fmt.Errorf("algorithm of %d bytes", len(value))
			}
			md.algorithm = value[0]
		case mdDefault:
			if len(value) != 1 || value[0] > 1 {
				return refMetadata{}, fmt.Errorf("default value object % x", value)
			}
			md.isDefault, md.hasDefault = value[0] == 1, true
		case mdRetries:
			// Total then left; SP 800-73-4 allows at most 15 (63Cx).
			if len(value) != 2 || value[0] > 15 || value[1] > value[0] {
				return refMetadata{}, fmt.Errorf("retries object % x", value)
			}
			md.retriesTotal, md.retriesLeft, md.hasRetries = int(value[0]), int(value[1]), true
		case mdPolicy:
			if len(value) != 2 {
				return refMetadata{}, fmt.Errorf("policy of %d bytes", len(value))
			}
		case mdOrigin:
			if len(value) != 1 {
				return refMetadata{}, fmt.Errorf("origin of %d bytes", len(value))
			}
		}
	}
	if !seen[mdAlgorithm] {
		return refMetadata{}, errors.New("metadata without algorithm")
	}
	return md, nil
}

// nextTLV splits one BER-TLV object with a one-byte tag off b.
func nextTLV(b []byte) (tag byte, value, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, fmt.Errorf("truncated object header")
	}
	tag, b = b[0], b[1:]
	if tag&0x1f == 0x1f || tag == 0x00 || tag == 0xff {
		return 0, nil, nil, fmt.Errorf("tag %02x not a one-byte tag", tag)
	}
	var n int
	switch l := b[0]; {
	case l < 0x80:
		n, b = int(l), b[1:]
	case l == 0x81 && len(b) >= 2 && b[1] >= 0x80:
		n, b = int(b[1]), b[2:]
	case l == 0x82 && len(b) >= 3 && b[1] != 0:
		n, b = int(b[1])<<8|int(b[2]), b[3:]
	default:
		return 0, nil, nil, fmt.Errorf("object %02x: bad length encoding", tag)
	}
	if n > len(b) {
		return 0, nil, nil, fmt.Errorf("object %02x: %d bytes, %d left", tag, n, len(b))
	}
	return tag, b[:n], b[n:], nil
}
