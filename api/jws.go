package api

import (
	"crypto"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// The JWS "typ" header of each signed message (RFC 7515 §4.1.9). A verifier
// accepts only the typ of the message it expects, so an envelope signed as
// one kind can never be replayed as another (a ResultAck as a Job).
const (
	TypeJob       = "teken-job+jws"
	TypeCancel    = "teken-cancel+jws"
	TypeResultAck = "teken-result-ack+jws"
	// TypeSyncRequest is edition 2's: a terminal of edition 1 logs it as a
	// control message of unknown type and does nothing.
	TypeSyncRequest = "teken-sync-request+jws"
	// TypeResultAcks is edition 4's (see ResultAcks).
	TypeResultAcks = "teken-result-acks+jws"
)

// Defaults for a Verifier's zero fields.
const (
	DefaultMaxContentBytes = 10 << 20            // document bytes per job
	DefaultMaxLifetime     = 90 * 24 * time.Hour // expires_at - issued_at
	DefaultSkew            = 2 * time.Minute     // recommended clock-skew tolerance
)

var allowedAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}

// Verifier checks signed envelopes on the terminal before anything is
// stored: the compact JWS, its alg (ES256 or EdDSA only), typ and kid, the
// signature against the trusted key named by kid, then the payload — version,
// fields, addressee, time window, sizes and document hashes. Every refusal is
// a *RefusalError.
type Verifier struct {
	Keys            map[string]crypto.PublicKey // trusted dispatcher keys by kid (see KeySet)
	Terminal        string                      // this terminal's id; envelopes for others are refused
	Now             func() time.Time            // the clock; nil means time.Now
	Skew            time.Duration               // tolerance for the central system's clock (see DefaultSkew)
	MaxContentBytes int64                       // document bytes per job; 0 means DefaultMaxContentBytes
	MaxLifetime     time.Duration               // longest window a job may ask for; 0 means DefaultMaxLifetime
	AllowHashOnly   bool                        // accept documents without their bytes
	// Marks accepts jobs of v 2 (VersionMarks): a terminal sets it once
	// it draws paraf and ttd, places by anchor, writes the jabatan and
	// certifies. Without it a v 2 job is refused as unsupported_version
	// before any of its fields is read, as by a terminal of v 1 only.
	Marks bool
}

// JobVersions are the versions of the Job the verifier accepts, as a
// terminal's Status lists them.
func (v *Verifier) JobVersions() []int {
	if v.Marks {
		return []int{Version, VersionMarks}
	}
	return []int{Version}
}

func (v *Verifier) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

func (v *Verifier) maxContent() int64 {
	if v.MaxContentBytes <= 0 {
		return DefaultMaxContentBytes
	}
	return min(v.MaxContentBytes, hardMaxContent)
}

// MaxJobEnvelope returns the largest job envelope the verifier reads: the
// content limit grown by base64 twice (once in the JSON, once in the JWS
// payload) plus room for the other fields. The transport can use it as its
// message size limit.
func (v *Verifier) MaxJobEnvelope() int {
	return MaxJobEnvelopeFor(v.maxContent())
}

func envelopeLimit(payload int) int { return payload*4/3 + 4<<10 }

// VerifyJob verifies a Job envelope as received on the jobs topic and
// returns the job with the kid of the dispatcher key that signed it (a
// Result names it back in its kid), so nothing parses the header again.
func (v *Verifier) VerifyJob(raw []byte) (job *Job, kid string, err error) {
	var j Job
	if kid, err = v.verify(raw, TypeJob, v.MaxJobEnvelope(), &j); err != nil {
		return nil, "", err
	}
	if err := v.checkAddress(j.Terminal, j.IssuedAt, j.ExpiresAt); err != nil {
		return nil, "", err
	}
	if err := j.Validate(); err != nil {
		return nil, "", err
	}
	if max := v.MaxLifetime; j.ExpiresAt.Sub(j.IssuedAt) > cmp(max, DefaultMaxLifetime) {
		return nil, "", refuse(ReasonMalformed, "window of %s exceeds %s", j.ExpiresAt.Sub(j.IssuedAt), cmp(max, DefaultMaxLifetime))
	}
	if n := j.ContentBytes(); n > v.maxContent() {
		return nil, "", refuse(ReasonTooLarge, "documents carry %d bytes, limit %d", n, v.maxContent())
	}
	if n := j.MaxResult(); n > MaxResultBytes {
		return nil, "", refuse(ReasonTooLarge, "its signed result could be %d bytes, over the %d a Result may carry: send the PDFs in fewer or smaller jobs", n, MaxResultBytes)
	}
	if j.HashOnly() && !v.AllowHashOnly {
		return nil, "", refuse(ReasonHashOnlyRefused, "a document comes without its bytes, and this terminal shows what it signs")
	}
	return &j, kid, nil
}

func cmp(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// VerifyCancel verifies a Cancel envelope as received on the control topic.
func (v *Verifier) VerifyCancel(raw []byte) (*Cancel, error) {
	var c Cancel
	if _, err := v.verify(raw, TypeCancel, envelopeLimit(MaxMessageBytes), &c); err != nil {
		return nil, err
	}
	if err := v.checkAddress(c.Terminal, c.IssuedAt, c.ExpiresAt); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// VerifyResultAck verifies a ResultAck envelope as received on the control
// topic.
func (v *Verifier) VerifyResultAck(raw []byte) (*ResultAck, error) {
	var a ResultAck
	if _, err := v.verify(raw, TypeResultAck, envelopeLimit(MaxMessageBytes), &a); err != nil {
		return nil, err
	}
	if err := v.checkAddress(a.Terminal, a.IssuedAt, a.ExpiresAt); err != nil {
		return nil, err
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

// VerifyResultAcks verifies a ResultAcks envelope as received on the
// control topic.
func (v *Verifier) VerifyResultAcks(raw []byte) (*ResultAcks, error) {
	var a ResultAcks
	if _, err := v.verify(raw, TypeResultAcks, envelopeLimit(MaxMessageBytes), &a); err != nil {
		return nil, err
	}
	if err := v.checkAddress(a.Terminal, a.IssuedAt, a.ExpiresAt); err != nil {
		return nil, err
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

// VerifySyncRequest verifies a SyncRequest envelope from the control topic.
func (v *Verifier) VerifySyncRequest(raw []byte) (*SyncRequest, error) {
	var r SyncRequest
	if _, err := v.verify(raw, TypeSyncRequest, envelopeLimit(MaxMessageBytes), &r); err != nil {
		return nil, err
	}
	if err := v.checkAddress(r.Terminal, r.IssuedAt, r.ExpiresAt); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// ControlType returns the typ header of a control-topic envelope, so the
// receiver knows whether to call VerifyCancel or VerifyResultAck. The value
// is unauthenticated until the matching Verify call succeeds.
func ControlType(raw []byte) (string, error) {
	h, err := peekHeader(raw)
	if err != nil {
		return "", err
	}
	return normaliseType(h.Typ), nil
}

// EnvelopeKID returns the kid header of an envelope; after a successful
// Verify call it names the dispatcher key that signed it (Result.KID).
func EnvelopeKID(raw []byte) (string, error) {
	h, err := peekHeader(raw)
	if err != nil {
		return "", err
	}
	return h.KID, nil
}

// EnvelopeSHA256 returns the hex SHA-256 of raw envelope bytes, as a
// Receipt's envelope_sha256 carries it.
func EnvelopeSHA256(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

type header struct {
	Typ string `json:"typ"`
	KID string `json:"kid"`
}

func peekHeader(raw []byte) (header, error) {
	var h header
	if len(raw) > envelopeLimit(hardMaxContent*2) {
		return h, refuse(ReasonTooLarge, "%d bytes", len(raw))
	}
	first, _, ok := strings.Cut(string(raw), ".")
	if !ok || len(first) > 8<<10 {
		return h, refuse(ReasonMalformed, "not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(first)
	if err != nil {
		return h, refuse(ReasonMalformed, "header: %v", err)
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, refuse(ReasonMalformed, "header: %v", err)
	}
	return h, nil
}

// normaliseType compares typ the way RFC 7515 §4.1.9 asks: case-insensitive,
// with an optional "application/" prefix.
func normaliseType(typ string) string {
	typ = strings.ToLower(typ)
	return strings.TrimPrefix(typ, "application/")
}

// verify checks the JWS and decodes its payload into m; it returns the kid
// of the key that signed it.
func (v *Verifier) verify(raw []byte, typ string, limit int, m any) (string, error) {
	if len(raw) > limit {
		return "", refuse(ReasonTooLarge, "envelope of %d bytes, limit %d", len(raw), limit)
	}
	if n := strings.Count(string(raw), "."); n != 2 {
		return "", refuse(ReasonMalformed, "not a compact JWS: %d dots, want 2", n)
	}
	obj, err := jose.ParseSignedCompact(string(raw), allowedAlgs)
	if err != nil {
		if h, herr := peekAlg(raw); herr == nil && h != AlgES256 && h != AlgEdDSA {
			return "", refuse(ReasonUnsupportedAlg, "alg %q: want %s or %s", truncate(h), AlgES256, AlgEdDSA)
		}
		return "", refuse(ReasonMalformed, "jws: %v", err)
	}
	if len(obj.Signatures) != 1 {
		return "", refuse(ReasonMalformed, "jws with %d signatures", len(obj.Signatures))
	}
	h := obj.Signatures[0].Protected
	got, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if normaliseType(got) != typ {
		return "", refuse(ReasonWrongType, "typ %q, want %q", truncate(got), typ)
	}
	if h.KeyID == "" {
		return "", refuse(ReasonUnknownKID, "kid header is required")
	}
	key, ok := v.Keys[h.KeyID]
	if !ok {
		return "", refuse(ReasonUnknownKID, "kid %q is not a trusted dispatcher key", truncate(h.KeyID))
	}
	if err := checkSignatureForm(h.Algorithm, obj.Signatures[0].Signature); err != nil {
		return "", err
	}
	payload, err := obj.Verify(key)
	if err != nil {
		return "", refuse(ReasonBadSignature, "kid %q: %v", h.KeyID, err)
	}
	if err := decodeJSONVersions(payload, limit, true, m, v.Marks); err != nil {
		return "", err
	}
	return h.KeyID, nil
}

// checkSignatureForm names the commonest integration mistake before the
// cryptography does: PHP's openssl_sign and Java's SHA256withECDSA give an
// ECDSA signature as DER, which JWS does not use, and go-jose only says
// "error in cryptographic primitive".
func checkSignatureForm(alg string, sig []byte) error {
	if alg != AlgES256 || len(sig) == 64 {
		return nil
	}
	if isDERSignature(sig) {
		return refuse(ReasonBadSignature, "ES256 needs the 64-byte R‖S form (RFC 7518 §3.4), got DER (%d bytes): convert the two INTEGERs to 32 bytes each, big-endian, left-padded with zeros", len(sig))
	}
	return refuse(ReasonBadSignature, "ES256 signature of %d bytes: want 64 bytes, R‖S (RFC 7518 §3.4)", len(sig))
}

// isDERSignature reports whether sig is an ASN.1 SEQUENCE of two INTEGERs,
// the form of RFC 3279 §2.2.3 (Ecdsa-Sig-Value).
func isDERSignature(sig []byte) bool {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &v)
	return err == nil && len(rest) == 0 && v.R != nil && v.S != nil
}

// SamePayload reports whether two compact JWS envelopes carry the same
// payload bytes: the same job signed twice (an ES256 signature differs
// each time) is the same job, and a terminal answers it as a duplicate.
func SamePayload(a, b []byte) bool {
	pa, errA := payloadOf(a)
	pb, errB := payloadOf(b)
	return errA == nil && errB == nil && pa == pb
}

// payloadOf returns the payload segment of a compact JWS.
func payloadOf(raw []byte) (string, error) {
	parts := strings.Split(string(raw), ".")
	if len(parts) != 3 {
		return "", errors.New("not a compact JWS")
	}
	return parts[1], nil
}

func peekAlg(raw []byte) (string, error) {
	first, _, _ := strings.Cut(string(raw), ".")
	b, err := base64.RawURLEncoding.DecodeString(first)
	if err != nil {
		return "", err
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return "", err
	}
	return h.Alg, nil
}

// checkAddress refuses an envelope for another terminal or outside its
// window. It runs before Validate so that the most telling reason wins.
func (v *Verifier) checkAddress(terminal string, issued, expires time.Time) error {
	if terminal != v.Terminal {
		return refuse(ReasonWrongTerminal, "addressed to %q, this is %q", truncate(terminal), v.Terminal)
	}
	if err := checkWindow(issued, expires); err != nil {
		return err
	}
	now := v.now()
	if now.Add(v.Skew).Before(issued) {
		return refuse(ReasonNotYetValid, "issued at %s, now %s", issued.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !now.Add(-v.Skew).Before(expires) {
		return refuse(ReasonExpired, "expired at %s, now %s", expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// Signer signs envelopes for the central side with one dispatcher private
// key; its kid is derived from the public key (KeyID).
type Signer struct {
	key crypto.Signer
	kid string
	alg jose.SignatureAlgorithm
}

// NewSigner returns a Signer for a P-256 ECDSA or Ed25519 private key.
func NewSigner(key crypto.Signer) (*Signer, error) {
	alg, err := Algorithm(key)
	if err != nil {
		return nil, fmt.Errorf("new signer: %w", err)
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return nil, fmt.Errorf("new signer: %w", err)
	}
	return &Signer{key: key, kid: kid, alg: jose.SignatureAlgorithm(alg)}, nil
}

// KID returns the kid the signer puts in every envelope.
func (s *Signer) KID() string { return s.kid }

// SignJob validates j and returns its compact JWS.
func (s *Signer) SignJob(j *Job) ([]byte, error) { return s.sign(j, TypeJob) }

// SignCancel validates c and returns its compact JWS.
func (s *Signer) SignCancel(c *Cancel) ([]byte, error) { return s.sign(c, TypeCancel) }

// SignResultAck validates a and returns its compact JWS.
func (s *Signer) SignResultAck(a *ResultAck) ([]byte, error) { return s.sign(a, TypeResultAck) }

// SignResultAcks validates a and returns its compact JWS.
func (s *Signer) SignResultAcks(a *ResultAcks) ([]byte, error) { return s.sign(a, TypeResultAcks) }

// SignSyncRequest validates r and returns its compact JWS.
func (s *Signer) SignSyncRequest(r *SyncRequest) ([]byte, error) {
	return s.sign(r, TypeSyncRequest)
}

func (s *Signer) sign(m Message, typ string) ([]byte, error) {
	if s == nil || s.key == nil {
		return nil, errors.New("sign: no key")
	}
	payload, err := Encode(m)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", typ, err)
	}
	js, err := jose.NewSigner(
		jose.SigningKey{Algorithm: s.alg, Key: jose.JSONWebKey{Key: s.key, KeyID: s.kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)),
	)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", typ, err)
	}
	obj, err := js.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", typ, err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", typ, err)
	}
	return []byte(out), nil
}
