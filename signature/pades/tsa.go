package pades

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/tekenid/teken/signature/tsa"
)

// TSAOptions name the RFC 3161 timestamp authorities a signature is
// stamped by.
type TSAOptions struct {
	// Client asks the authorities, in order, and checks their tokens
	// (package tsa); nil makes every timestamp fail with ErrTimestamp.
	Client *tsa.Client
}

// ErrTimestamp matches, through errors.Is, every reason a timestamp could
// not be added: the authorities were unreachable, refused, or answered
// with something that does not stamp this signature. An error that comes
// from the authorities matches tsa.ErrTimestamp as well.
var ErrTimestamp = errors.New("pades: no timestamp")

// fetchTimestamp asks the authorities for a token over the signature
// value (the signature-time-stamp of RFC 5126 §5.11.4) and returns the
// token, checked by package tsa.
func fetchTimestamp(ctx context.Context, o *TSAOptions, h crypto.Hash, sig []byte) (*tsa.Token, error) {
	if o == nil || o.Client == nil {
		return nil, fmt.Errorf("%w: no timestamp authority configured", ErrTimestamp)
	}
	tok, err := o.Client.Stamp(ctx, h, sig)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTimestamp, err)
	}
	return tok, nil
}
