// Package revocation gets and checks the revocation status of the
// certificates of a chain, for the long-term signature levels (PAdES
// B-LT, ETSI EN 319 142-1 §5.4) that embed it: OCSP (RFC 6960) first,
// over HTTP POST with a nonce, then the CRLs of the CRL distribution
// points (RFC 5280 §5). Only http:// URLs from certificates are fetched;
// every answer is bounded in size and every request in time.
//
// A *RevokedError and ErrUnknown are permanent answers; ErrUnavailable
// (no source reachable, valid or fresh enough) is transient, and its text
// names each source tried and why it failed.
package revocation
