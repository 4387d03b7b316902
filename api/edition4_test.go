package api

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestResultAcksRoundTrip signs a ResultAcks with each test key, verifies
// it as the terminal does, and refuses it as any other control message and
// any other control message as it.
func TestResultAcksRoundTrip(t *testing.T) {
	v := testVerifier(t)
	v.Now = func() time.Time { return t0.Add(3 * time.Hour) }
	for _, name := range []string{"ed25519", "p256"} {
		t.Run(name, func(t *testing.T) {
			s := loadSigner(t, name)
			env, err := s.SignResultAcks(sampleResultAcks())
			if err != nil {
				t.Fatal(err)
			}
			if typ, err := ControlType(env); err != nil || typ != TypeResultAcks {
				t.Errorf("ControlType = %q, %v", typ, err)
			}
			if kid, err := EnvelopeKID(env); err != nil || kid != s.KID() {
				t.Errorf("EnvelopeKID = %q, %v; want %q", kid, err, s.KID())
			}
			a, err := v.VerifyResultAcks(env)
			if err != nil || !reflect.DeepEqual(a, sampleResultAcks()) {
				t.Fatalf("VerifyResultAcks = %+v, %v", a, err)
			}
			ack, err := s.SignResultAck(sampleResultAck())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := UnverifiedJobID(env); err == nil {
				t.Error("UnverifiedJobID read a job id from a ResultAcks")
			}
			for _, c := range []struct {
				name string
				err  error
			}{
				{"acks as ack", second(v.VerifyResultAck(env))},
				{"acks as cancel", second(v.VerifyCancel(env))},
				{"acks as sync request", second(v.VerifySyncRequest(env))},
				{"acks as job", third(v.VerifyJob(env))},
				{"ack as acks", second(v.VerifyResultAcks(ack))},
			} {
				if Reason(c.err) != ReasonWrongType {
					t.Errorf("%s: %v, want wrong_type", c.name, c.err)
				}
			}
		})
	}
}

// TestVerifyResultAcksRefusals: the batch is verified as a whole, with the
// checks of every control message.
func TestVerifyResultAcksRefusals(t *testing.T) {
	s := loadSigner(t, "ed25519")
	key, kid := loadPrivate(t, "ed25519"), kidOf(t, "ed25519")
	env, err := s.SignResultAcks(sampleResultAcks())
	if err != nil {
		t.Fatal(err)
	}
	payload := mustEncode(sampleResultAcks())
	at := func(d time.Duration) func(*Verifier) {
		return func(v *Verifier) { v.Now = func() time.Time { return t0.Add(d) } }
	}
	signed := func(p string) []byte { return signRaw(t, key, jose.EdDSA, kid, TypeResultAcks, []byte(p)) }
	edit := func(old, new string) []byte {
		t.Helper()
		if !strings.Contains(payload, old) {
			t.Fatalf("%s not in %s", old, payload)
		}
		return signed(strings.Replace(payload, old, new, 1))
	}
	untrusted, err := loadSigner(t, "p256-other").SignResultAcks(sampleResultAcks())
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(env)
	flipped[bytes.LastIndexByte(flipped, '.')+3] ^= 0x01
	ids := `["` + sampleJobID + `","01JGZ9A0B1C2D3E4F5G6H7J8K9","0f8fad5b-d9cb-469f-a165-70867728950e"]`
	cases := []struct {
		name   string
		env    []byte
		config func(*Verifier)
		want   ReasonCode
		detail string
	}{
		{"valid", env, at(3 * time.Hour), "", ""},
		{"valid within skew before issued_at", env, at(2*time.Hour - DefaultSkew/2), "", ""},
		{"not yet valid", env, at(2*time.Hour - DefaultSkew - time.Second), ReasonNotYetValid, ""},
		{"expired", env, at(26*time.Hour + DefaultSkew + time.Second), ReasonExpired, ""},
		{"another terminal", env, func(v *Verifier) { v.Terminal = "baubau-setda-02"; at(3 * time.Hour)(v) }, ReasonWrongTerminal, ""},
		{"untrusted key", untrusted, at(3 * time.Hour), ReasonUnknownKID, ""},
		{"signature flipped", flipped, at(3 * time.Hour), ReasonBadSignature, ""},
		{"too large", bytes.Repeat([]byte("."), envelopeLimit(MaxMessageBytes)+1), at(3 * time.Hour), ReasonTooLarge, ""},
		{"unknown member", edit(`{"v":1,`, `{"v":1,"job_id":"`+sampleJobID+`",`), at(3 * time.Hour), ReasonMalformed, "job_id"},
		{"job_ids null", edit(ids, `null`), at(3 * time.Hour), ReasonMalformed, "job_ids is null"},
		{"job_ids missing", edit(`"job_ids":`+ids+`,`, ``), at(3 * time.Hour), ReasonMalformed, "job_ids is required"},
		{"job_ids element null", edit(ids, `["`+sampleJobID+`",null]`), at(3 * time.Hour), ReasonMalformed, "job_ids[1] is null"},
		{"job_ids a string", edit(ids, `"`+sampleJobID+`"`), at(3 * time.Hour), ReasonMalformed, ""},
		{"job_ids empty", edit(ids, `[]`), at(3 * time.Hour), ReasonMalformed, "job_ids: empty"},
		{"job id named twice", edit(ids, `["`+sampleJobID+`","0f8fad5b-d9cb-469f-a165-70867728950e","`+sampleJobID+`"]`), at(3 * time.Hour), ReasonMalformed, "job_ids[2]: " + sampleJobID + " named twice"},
		{"lower-case ulid", edit(ids, `["`+strings.ToLower(sampleJobID)+`"]`), at(3 * time.Hour), ReasonMalformed, "job_ids[0]"},
		{"version 2", edit(`{"v":1,`, `{"v":2,`), at(3 * time.Hour), ReasonUnsupportedVersion, ""},
		{"times lower case", edit(`T03:00:00.000Z`, `t03:00:00.000z`), at(3 * time.Hour), "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := testVerifier(t)
			c.config(v)
			a, err := v.VerifyResultAcks(c.env)
			if Reason(err) != c.want {
				t.Fatalf("%v, want %q", err, c.want)
			}
			if err != nil && (a != nil || !strings.Contains(err.Error(), c.detail)) {
				t.Errorf("refusal %q (with %+v) does not say %q", err, a, c.detail)
			}
		})
	}
}

// TestResultAcksValidate covers the bounds of job_ids: one to
// MaxResultAcks distinct valid ids.
func TestResultAcksValidate(t *testing.T) {
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("0f8fad5b-d9cb-469f-a165-%012x", i)
		}
		return out
	}
	with := func(f func(*ResultAcks)) *ResultAcks { a := sampleResultAcks(); f(a); return a }
	cases := []struct {
		name string
		acks *ResultAcks
		want ReasonCode
	}{
		{"sample", sampleResultAcks(), ""},
		{"one id", with(func(a *ResultAcks) { a.JobIDs = a.JobIDs[:1] }), ""},
		{"at the limit", with(func(a *ResultAcks) { a.JobIDs = ids(MaxResultAcks) }), ""},
		{"over the limit", with(func(a *ResultAcks) { a.JobIDs = ids(MaxResultAcks + 1) }), ReasonMalformed},
		{"nil", with(func(a *ResultAcks) { a.JobIDs = nil }), ReasonMalformed},
		{"empty", with(func(a *ResultAcks) { a.JobIDs = []string{} }), ReasonMalformed},
		{"twice", with(func(a *ResultAcks) { a.JobIDs = append(a.JobIDs, sampleJobID) }), ReasonMalformed},
		{"empty id", with(func(a *ResultAcks) { a.JobIDs = append(a.JobIDs, "") }), ReasonMalformed},
		{"upper-case uuid", with(func(a *ResultAcks) { a.JobIDs[2] = strings.ToUpper(a.JobIDs[2]) }), ReasonMalformed},
		{"bad terminal", with(func(a *ResultAcks) { a.Terminal = "Kendari" }), ReasonMalformed},
		{"zero window", with(func(a *ResultAcks) { a.ExpiresAt = a.IssuedAt }), ReasonMalformed},
		{"no issued_at", with(func(a *ResultAcks) { a.IssuedAt = time.Time{} }), ReasonMalformed},
		{"version 2", with(func(a *ResultAcks) { a.V = 2 }), ReasonUnsupportedVersion},
	}
	s := loadSigner(t, "ed25519")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.acks.Validate(); Reason(err) != c.want {
				t.Errorf("Validate = %v, want %q", err, c.want)
			}
			if _, err := s.SignResultAcks(c.acks); (err == nil) != (c.want == "") {
				t.Errorf("SignResultAcks = %v, want %q", err, c.want)
			}
		})
	}
}

// TestResultAcksLargest: a batch of MaxResultAcks UUIDs, the longest ids,
// is as small as its doc comment says and verifies.
func TestResultAcksLargest(t *testing.T) {
	a := sampleResultAcks()
	a.JobIDs = make([]string, MaxResultAcks)
	for i := range a.JobIDs {
		a.JobIDs[i] = fmt.Sprintf("0f8fad5b-d9cb-469f-a165-%012x", i)
	}
	env, err := loadSigner(t, "p256").SignResultAcks(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(env) > 64<<10 {
		t.Errorf("%d ids make an envelope of %d bytes, want near 50 KB", MaxResultAcks, len(env))
	}
	v := testVerifier(t)
	v.Now = func() time.Time { return t0.Add(3 * time.Hour) }
	got, err := v.VerifyResultAcks(env)
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("VerifyResultAcks: %v", err)
	}
	t.Logf("%d ids: payload %d bytes, envelope %d bytes", MaxResultAcks, len(mustEncode(a)), len(env))
}

// TestReceiptForResultAcks: a batch is answered only when refused, and
// that receipt names no job; the terminal never sends another.
func TestReceiptForResultAcks(t *testing.T) {
	fill := func(r Receipt) *Receipt {
		r.V, r.Terminal, r.For, r.EnvelopeSHA256, r.At = 1, sampleTerminal, ForResultAcks, strings.Repeat("a", 64), t0
		return &r
	}
	for _, r := range []Receipt{
		{Status: ReceiptRefused, Reason: ReasonExpired, Detail: "expired at 2026-01-06T03:00:00Z"},
		{Status: ReceiptRefused, Reason: ReasonBadSignature},
	} {
		b, err := Encode(fill(r))
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if !bytes.Contains(b, []byte(`"for":"result_acks"`)) || bytes.Contains(b, []byte(`job_id`)) {
			t.Errorf("receipt %s", b)
		}
		if _, err := DecodeReceipt(b); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	for _, r := range []Receipt{
		{Status: ReceiptStored, JobID: sampleJobID},
		{Status: ReceiptDuplicate, JobID: sampleJobID},
		{Status: ReceiptDuplicate},
	} {
		if b, err := Encode(fill(r)); err == nil {
			t.Errorf("%s accepted", b)
		}
	}
}

// TestControlTimesOnTheWire: every signed control message writes its
// times in TimeLayout, whatever zone and precision the time.Time has.
func TestControlTimesOnTheWire(t *testing.T) {
	at := time.Date(2026, 1, 5, 9, 0, 0, 123456789, time.FixedZone("WITA", 8*3600))
	window := func(issued, expires *time.Time) { *issued, *expires = at, at.Add(time.Hour) }
	c, ack, acks := sampleCancel(), sampleResultAck(), sampleResultAcks()
	req := &SyncRequest{V: Version, Terminal: sampleTerminal, RequestID: sampleJobID}
	window(&c.IssuedAt, &c.ExpiresAt)
	window(&ack.IssuedAt, &ack.ExpiresAt)
	window(&acks.IssuedAt, &acks.ExpiresAt)
	window(&req.IssuedAt, &req.ExpiresAt)
	for _, m := range []Message{c, ack, acks, req} {
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"issued_at":"2026-01-05T01:00:00.123Z","expires_at":"2026-01-05T02:00:00.123Z"`)) {
			t.Errorf("%T %s: want issued_at 2026-01-05T01:00:00.123Z and expires_at an hour later", m, b)
		}
	}
}
