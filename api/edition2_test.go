package api

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestTimesOnTheWire: every time the contract writes is UTC with exactly
// three fraction digits and Z, whatever the time.Time carried.
func TestTimesOnTheWire(t *testing.T) {
	at := time.Date(2026, 1, 5, 9, 0, 0, 123456789, time.FixedZone("WITA", 8*3600))
	r := &Receipt{V: 1, Terminal: sampleTerminal, JobID: sampleJob().JobID, EnvelopeSHA256: strings.Repeat("a", 64), Status: ReceiptStored, At: at}
	b, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"at":"2026-01-05T01:00:00.123Z"`)) {
		t.Errorf("receipt %s: want at 2026-01-05T01:00:00.123Z", b)
	}
	res := sampleSignedResult()
	res.CompletedAt = at
	res.Documents[0].SignedAt = at.Add(999 * time.Microsecond)
	b, err = Encode(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"completed_at":"2026-01-05T01:00:00.123Z"`, `"signed_at":"2026-01-05T01:00:00.124Z"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("result %s: want %s", b, want)
		}
	}
	back, err := DecodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.CompletedAt; !got.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("completed_at read back as %v", got)
	}
}

// TestLowerCaseTimes: RFC 3339 §5.6 allows "t" and "z"; Go's parser does
// not, so the decoder upper-cases them where they stand, and only there.
func TestLowerCaseTimes(t *testing.T) {
	raw := []byte(`{"v":1,"terminal":"kendari-setda-01","at":"2026-01-05t01:00:00.5z","jobs_waiting":["01JGZ8Q4T5V6W7X8Y9Z0ABCDEF"],"results_undelivered":[],"note":"2026-01-05t01:00:00z"}`)
	orig := bytes.Clone(raw)
	s, err := DecodeSync(raw)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 1, 5, 1, 0, 0, 5e8, time.UTC); !s.At.Equal(want) {
		t.Errorf("at %v, want %v", s.At, want)
	}
	if !bytes.Equal(raw, orig) {
		t.Error("the caller's bytes were changed")
	}
	v := testVerifier(t)
	c := sampleCancel()
	payload := strings.Replace(strings.Replace(mustEncode(c), "T02:00:00.000Z", "t02:00:00.000z", 1), "T02:00:00.000Z", "t02:00:00.000z", 1)
	env := signRaw(t, loadPrivate(t, "p256"), jose.ES256, kidOf(t, "p256"), TypeCancel, []byte(payload))
	if _, err := v.VerifyCancel(env); err != nil {
		t.Errorf("cancel with lower-case times %s: %v", payload, err)
	}
	for _, bad := range []string{`"2026-01-05 01:00:00Z"`, `"2026-01-05T01:00:00"`, `"2026-01-05"`} {
		raw := []byte(`{"v":1,"terminal":"kendari-setda-01","at":` + bad + `,"jobs_waiting":[],"results_undelivered":[]}`)
		if _, err := DecodeSync(raw); Reason(err) != ReasonMalformed {
			t.Errorf("at %s: %v, want malformed", bad, err)
		}
	}
}

// TestSchemaOnlyFormsRefused: what the schemas refuse and encoding/json
// would take is refused by the decoder too.
func TestSchemaOnlyFormsRefused(t *testing.T) {
	v := testVerifier(t)
	p256 := loadPrivate(t, "p256")
	payload := mustEncode(sampleJob())
	cases := map[string]string{
		"MIME base64": strings.Replace(payload, `"content":"VW5k`, `"content":"VW5k\r\n`, 1),
		"fields null": strings.Replace(payload, `"fields":[{"label":"Sifat","value":"Segera"}]`, `"fields":null`, 1),
		"name null":   strings.Replace(payload, `"name":"Drs. La Ode Budiman, M.Si."`, `"name":null`, 1),
	}
	for name, p := range cases {
		if p == payload {
			t.Fatalf("%s: the edit did not apply", name)
		}
		env := signRaw(t, p256, jose.ES256, kidOf(t, "p256"), TypeJob, []byte(p))
		_, _, err := v.VerifyJob(env)
		if Reason(err) != ReasonMalformed {
			t.Errorf("%s: %v, want malformed", name, err)
		}
	}
}

// TestDERSignatureNamed: the commonest mistake of PHP and Java signers gets
// a refusal that says what to do.
func TestDERSignatureNamed(t *testing.T) {
	key := loadPrivate(t, "p256").(*ecdsa.PrivateKey)
	payload := mustEncode(sampleCancel())
	header := b64(`{"alg":"ES256","kid":"` + kidOf(t, "p256") + `","typ":"teken-cancel+jws"}`)
	input := header + "." + b64(payload)
	sum := sha256.Sum256([]byte(input))
	der, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	env := []byte(input + "." + base64.RawURLEncoding.EncodeToString(der))
	_, err = testVerifier(t).VerifyCancel(env)
	var ref *RefusalError
	if !errors.As(err, &ref) || ref.Reason != ReasonBadSignature || !strings.Contains(ref.Detail, "ES256 needs the 64-byte R‖S form (RFC 7518 §3.4), got DER") {
		t.Fatalf("DER signature: %v", err)
	}
	short := []byte(input + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 63)))
	if _, err := testVerifier(t).VerifyCancel(short); err == nil || !strings.Contains(err.Error(), "want 64 bytes") {
		t.Errorf("63-byte signature: %v", err)
	}
}

// TestSyncRequestRoundTrip signs and verifies a SyncRequest, and refuses it
// under another typ.
func TestSyncRequestRoundTrip(t *testing.T) {
	s := loadSigner(t, "ed25519")
	r := &SyncRequest{V: 1, Terminal: sampleTerminal, RequestID: "01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", IssuedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	env, err := s.SignSyncRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := ControlType(env); typ != TypeSyncRequest {
		t.Errorf("typ %q", typ)
	}
	v := testVerifier(t)
	v.Now = func() time.Time { return t0.Add(time.Minute) }
	got, err := v.VerifySyncRequest(env)
	if err != nil || got.RequestID != r.RequestID {
		t.Fatalf("verify: %v %+v", err, got)
	}
	if _, err := v.VerifyCancel(env); Reason(err) != ReasonWrongType {
		t.Errorf("sync request as cancel: %v", err)
	}
	bad := *r
	bad.RequestID = "01jgz8q4t5v6w7x8y9z0abcdef"
	if _, err := s.SignSyncRequest(&bad); err == nil {
		t.Error("a lower-case ULID request id was signed")
	}
}

// TestReceiptForControl: receipts for control messages validate with and
// without a job id, and a conflict names the stored envelope.
func TestReceiptForControl(t *testing.T) {
	hash := strings.Repeat("b", 64)
	ok := []Receipt{
		{For: ForCancel, JobID: "01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", Status: ReceiptRefused, Reason: ReasonTooLate},
		{For: ForResultAck, Status: ReceiptRefused, Reason: ReasonBadSignature},
		{For: ForResultAck, JobID: "01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", Status: ReceiptDuplicate},
		{For: ForSyncRequest, RequestID: "01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", Status: ReceiptRefused, Reason: ReasonExpired},
		{For: ForResultAcks, Status: ReceiptRefused, Reason: ReasonExpired},
		{For: ForJob, JobID: "01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", Status: ReceiptRefused, Reason: ReasonConflict, StoredEnvelopeSHA256: hash},
		{For: ForJob, JobID: "01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", Status: ReceiptStored, Resent: true},
	}
	bad := []Receipt{
		{For: "status", JobID: "01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", Status: ReceiptStored},
		{For: ForSyncRequest, Status: ReceiptDuplicate},
		{For: ForCancel, Status: ReceiptDuplicate},
		{For: ForResultAcks, JobID: "01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", Status: ReceiptDuplicate},
		{For: "result-acks", Status: ReceiptRefused, Reason: ReasonExpired},
		{For: ForJob, JobID: "01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", Status: ReceiptRefused, Reason: ReasonConflict, StoredEnvelopeSHA256: "B"},
	}
	fill := func(r Receipt) *Receipt {
		r.V, r.Terminal, r.EnvelopeSHA256, r.At = 1, sampleTerminal, strings.Repeat("a", 64), t0
		return &r
	}
	for _, r := range ok {
		b, err := Encode(fill(r))
		if err != nil {
			t.Errorf("%+v: %v", r, err)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeReceipt(b); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	for _, r := range bad {
		if _, err := Encode(fill(r)); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
}
