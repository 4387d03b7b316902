package pades

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/tekenid/teken/signature/cms"
)

// Timestamp makes the last signature of s.PDF PAdES B-T: it asks the
// authority o for an RFC 3161 token over the signature value and adds it
// as the signature-time-stamp unsigned attribute (RFC 5126 §5.11.4; what
// level B-T of ETSI EN 319 142-1 clause 6 asks for). No signer is needed:
// the token stamps the signature value, which is already made, and
// unsigned attributes are outside what the signature covers (RFC 5652
// §5.3), so the signed attributes and the signature value stay byte for
// byte what the card signed.
//
// The new CMS is written into the room Sign reserved in /Contents (ask for
// it with Options.TSA), in place: the hex string keeps its length and its
// zero padding, so /ByteRange, the cross-reference offsets and every byte
// the signature covers stay the same (ISO 32000-1 §12.8.1), and no copy
// of the document is made. s.PDF is changed only when the whole token
// fits; s.Timestamped is then set.
//
// An authority that cannot be reached, refuses, answers with something
// that does not stamp this signature, or sends a token too large for the
// reserved room (also matching ErrTooLarge) does not fail Timestamp, nor
// does ctx ending: s.PDF is left as it was, a valid B-B signature, and
// s.TimestampError, which matches ErrTimestamp, says why. Timestamp
// returns s.
//
// The signature is the one Sign made when s came from Sign; otherwise it
// is found again from the /ByteRange of a signature dictionary that covers
// the whole file. Either way it is verified against the file before
// anything is asked or written; an error (matching ErrMalformed) means
// s.PDF does not end with a signature of this package that a timestamp
// can be added to without breaking it. Only the last signature qualifies:
// an earlier one's /Contents is covered by the signatures after it.
func Timestamp(ctx context.Context, s *Signed, o TSAOptions) (*Signed, error) {
	if s == nil {
		return nil, errors.New("pades: nil signed PDF")
	}
	sig, err := lastSignature(ctx, s.PDF, s.contents)
	if err != nil && ctx.Err() != nil {
		// Stopped while hashing the file: nothing wrong with the PDF.
		s.TimestampError = fmt.Errorf("%w: %w", ErrTimestamp, ctx.Err())
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	token, err := fetchTimestamp(ctx, &o, sig.hash, sig.value)
	if err == nil {
		err = sig.stamp(s.PDF, token.DER)
	}
	if err != nil {
		// The signature itself is fine; B-B is better than none.
		slog.WarnContext(ctx, "pades: signature stays B-B without timestamp", "err", err)
		s.TimestampError = err
		return s, nil
	}
	s.contents = sig.contents
	s.Timestamped, s.TimestampError, s.Token = true, nil, token
	return s, nil
}

// maxByteRanges bounds the /ByteRange candidates lastSignature verifies, a
// hash of the whole file each; a document of ours has one that fits.
const maxByteRanges = 8

// maxByteRangeText is the most text a /ByteRange array is read from.
const maxByteRangeText = 256

// signature is a PDF signature found in a file and verified against it.
type signature struct {
	// contents are the offsets of the /Contents hex string's '<' and just
	// past its '>': the hole the byte range leaves.
	contents [2]int
	der      []byte      // the CMS SignedData, without its padding
	value    []byte      // the signature value, what a timestamp stamps
	hash     crypto.Hash // the signature's digest algorithm
}

// lastSignature finds the signature that covers all of pdf: at known when
// Sign said where it is, else from the /ByteRange arrays, newest first.
func lastSignature(ctx context.Context, pdf []byte, known [2]int) (*signature, error) {
	if known != ([2]int{}) {
		return readSignature(ctx, pdf, known)
	}
	key := []byte("/ByteRange")
	end, tried := len(pdf), 0
	var last error
	for tried < maxByteRanges {
		i := bytes.LastIndex(pdf[:end], key)
		if i < 0 {
			break
		}
		end = i
		c, ok := wholeFileRange(pdf, i+len(key))
		if !ok {
			continue
		}
		tried++
		sig, err := readSignature(ctx, pdf, c)
		if err == nil {
			return sig, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		last = err
	}
	if last != nil {
		return nil, last
	}
	return nil, malformed("no signature covers the whole file")
}

// wholeFileRange reads the array after a /ByteRange key at pos and returns
// the hole it leaves, if the array is [0 a b c] and ends the file: b+c is
// its length. Only such a signature can take a timestamp in place.
func wholeFileRange(pdf []byte, pos int) ([2]int, bool) {
	// A byte range array is four numbers, well under maxByteRangeText
	// bytes; a window keeps a file full of the key from being read over
	// and over to its end. One level of nesting is all an array of
	// numbers needs.
	l := &lexer{b: pdf[:min(len(pdf), pos+maxByteRangeText)], pos: pos}
	v, err := l.object(maxDepth - 1)
	a, ok := v.(array)
	if err != nil || !ok || len(a) != 4 {
		return [2]int{}, false
	}
	var br [4]int
	for i, e := range a {
		n, ok := e.(int64)
		if !ok || n < 0 || n > int64(len(pdf)) {
			return [2]int{}, false
		}
		br[i] = int(n)
	}
	if br[0] != 0 || br[1] >= br[2] || br[2]+br[3] != len(pdf) {
		return [2]int{}, false
	}
	return [2]int{br[1], br[2]}, true
}

// readSignature decodes the CMS in the hole c of pdf and verifies it over
// the bytes around the hole, so that what Timestamp rewrites is certainly
// the signature of this very file.
func readSignature(ctx context.Context, pdf []byte, c [2]int) (*signature, error) {
	if c[0] <= 0 || c[1] > len(pdf) || c[1]-c[0] < 4 || (c[1]-c[0])%2 != 0 || pdf[c[0]] != '<' || pdf[c[1]-1] != '>' {
		return nil, malformed("signature /Contents at %d to %d is not a hex string", c[0], c[1])
	}
	room := make([]byte, (c[1]-c[0]-2)/2)
	if _, err := hex.Decode(room, pdf[c[0]+1:c[1]-1]); err != nil {
		return nil, malformed("signature /Contents: %v", err)
	}
	// The CMS is followed by the zero padding Sign wrote.
	s := cryptobyte.String(room)
	var der cryptobyte.String
	if !s.ReadASN1Element(&der, cbasn1.SEQUENCE) || len(bytes.TrimLeft(s, "\x00")) != 0 {
		return nil, malformed("signature /Contents is not one DER SEQUENCE and zero padding")
	}
	signed := io.MultiReader(bytes.NewReader(pdf[:c[0]]), bytes.NewReader(pdf[c[1]:]))
	v, err := cms.VerifyReader(ctx, der, signed, cms.VerifyOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: signature does not verify over its byte range: %w", ErrMalformed, err)
	}
	return &signature{contents: c, der: der, value: v.Signature, hash: v.DigestAlgorithm}, nil
}

// stamp writes the CMS of s with token as its signature-time-stamp into
// the hole of pdf, hex-encoded and padded with zeros to the same length.
// Nothing is written unless all of it fits. The result verifies because
// nothing it is checked against changes: the byte range is the same bytes,
// and cms.AddSignatureTimestamp keeps the signed attributes (with the
// message digest) and the signature value byte for byte.
func (s *signature) stamp(pdf, token []byte) error {
	der, err := cms.AddSignatureTimestamp(s.der, token)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTimestamp, err)
	}
	hole := pdf[s.contents[0]+1 : s.contents[1]-1]
	if 2*len(der) > len(hole) {
		return fmt.Errorf("%w: a token of %d bytes makes the signature %d bytes, %d reserved: %w",
			ErrTimestamp, len(token), len(der), len(hole)/2, ErrTooLarge)
	}
	n := hex.Encode(hole, der)
	for i := n; i < len(hole); i++ {
		hole[i] = '0'
	}
	return nil
}

// SignatureTimestampToken returns the signature timestamp (RFC 3161 token,
// DER ContentInfo) of the signature that covers the whole of pdf, as
// Timestamp wrote it, for a caller that takes the signature further later
// (its validation data are dated after the token's time). It is nil, with
// no error, when that signature has none; an error (ErrMalformed) means no
// signature of this package covers the file.
func SignatureTimestampToken(ctx context.Context, pdf []byte) ([]byte, error) {
	sig, err := lastSignature(ctx, pdf, [2]int{})
	if err != nil {
		return nil, err
	}
	tokens, err := cms.SignatureTimestamps(sig.der)
	if err != nil || len(tokens) == 0 {
		return nil, err
	}
	return tokens[len(tokens)-1], nil
}
