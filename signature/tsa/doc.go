// Package tsa asks RFC 3161 timestamp authorities for tokens: several
// authorities in order (fail-over), HTTP Basic authentication and TLS
// client certificates, a requested policy, and every answer checked
// before it is used (imprint, nonce, policy, the token's signature and
// ESSCertIDv2 per RFC 5816, the authority's chain, the clock skew).
//
// The token's CMS is checked by cms.VerifyTimestampToken, which reads
// strict DER only; the TimeStampResp around it (RFC 3161 §2.4.2) is read
// by github.com/digitorus/timestamp, but only once it is known to be DER
// (see parseResponse).
package tsa
