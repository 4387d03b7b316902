package api

import (
	"bytes"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// addGoldenSeeds adds the golden messages of one kind, plus a few broken
// shapes, as fuzz seeds; testdata/fuzz holds more.
func addGoldenSeeds(f *testing.F, names ...string) {
	for _, n := range names {
		f.Add(readGolden(f, n))
	}
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"v":2}`))
	f.Add([]byte(`{"V":1,"terminal":"a"}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]]]]`))
}

// fuzzDecoder checks that a decoder never panics and that whatever it
// accepts is valid and encodes to bytes that decode to the same encoding.
func fuzzDecoder[T any, P interface {
	*T
	Message
}](f *testing.F, decodeFn func([]byte) (*T, error)) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeFn(data)
		if err != nil {
			if m != nil {
				t.Fatalf("refused with a message: %v", err)
			}
			if Reason(err) == "" {
				t.Fatalf("refusal without reason: %v", err)
			}
			return
		}
		first, err := Encode(P(m))
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", data, err)
		}
		again, err := decodeFn(first)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", first, err)
		}
		second, err := Encode(P(again))
		if err != nil || !bytes.Equal(first, second) {
			t.Fatalf("round trip differs:\n%s\n%s (%v)", first, second, err)
		}
	})
}

func FuzzDecodeReceipt(f *testing.F) {
	addGoldenSeeds(f, "receipt-stored", "receipt-refused", "receipt-refused-no-id")
	fuzzDecoder[Receipt](f, DecodeReceipt)
}

func FuzzDecodeResult(f *testing.F) {
	addGoldenSeeds(f, "result-signed", "result-rejected", "result-expired")
	fuzzDecoder[Result](f, DecodeResult)
}

func FuzzDecodeStatus(f *testing.F) {
	addGoldenSeeds(f, "status-online", "status-offline")
	fuzzDecoder[Status](f, DecodeStatus)
}

func FuzzDecodeSync(f *testing.F) {
	addGoldenSeeds(f, "sync", "sync-empty")
	fuzzDecoder[Sync](f, DecodeSync)
}

// FuzzVerifyJob feeds each input twice: as an envelope, and as the payload
// of an envelope signed with a trusted key, so the fuzzer reaches the
// payload checks behind the signature.
func FuzzVerifyJob(f *testing.F) {
	addGoldenSeeds(f, "job")
	env, err := loadSigner(f, "ed25519").SignJob(sampleJob())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	f.Add([]byte("eyJhbGciOiJub25lIn0.e30."))
	key := loadPrivate(f, "ed25519")
	kid := kidOf(f, "ed25519")
	v := testVerifier(f)
	v.MaxContentBytes = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		if id, err := UnverifiedJobID(data); err == nil && ValidJobID(id) != nil {
			t.Fatalf("UnverifiedJobID returned invalid id %q", id)
		}
		if j, _, err := v.VerifyJob(data); err == nil {
			if _, err := Encode(j); err != nil {
				t.Fatalf("verified an invalid job: %v", err)
			}
		} else if Reason(err) == "" || j != nil {
			t.Fatalf("refusal %v with job %v", err, j)
		}
		if len(data) > v.MaxJobEnvelope()/2 {
			return
		}
		j, _, err := v.VerifyJob(signRaw(t, key, jose.EdDSA, kid, TypeJob, data))
		if err != nil {
			if Reason(err) == ReasonBadSignature || Reason(err) == ReasonUnknownKID {
				t.Fatalf("trusted signature refused: %v", err)
			}
			return
		}
		if err := j.Validate(); err != nil {
			t.Fatalf("verified an invalid job: %v", err)
		}
		if j.HashOnly() || j.ContentBytes() > v.MaxContentBytes || j.Terminal != sampleTerminal {
			t.Fatalf("verified a job the configuration refuses: %+v", j)
		}
	})
}

// FuzzVerifyControl covers the control topic: ControlType and EnvelopeKID on
// raw input, then every control verifier on the input as signed payload,
// and the Cancel's and the ResultAcks' on it as envelope.
func FuzzVerifyControl(f *testing.F) {
	addGoldenSeeds(f, "cancel", "result-ack", "result-acks", "sync-request")
	v := testVerifier(f)
	// A batch that verifies as an envelope at the verifier's time, so that
	// mutations of it reach the checks behind the signature.
	acks := sampleResultAcks()
	acks.IssuedAt, acks.ExpiresAt = v.Now(), v.Now().Add(time.Hour)
	env, err := loadSigner(f, "ed25519").SignResultAcks(acks)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	key := loadPrivate(f, "ed25519")
	kid := kidOf(f, "ed25519")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ControlType(data)
		_, _ = EnvelopeKID(data)
		if _, err := v.VerifyCancel(data); err == nil {
			t.Fatalf("unsigned input verified as a cancel: %q", data)
		}
		if a, err := v.VerifyResultAcks(data); err == nil {
			if err := a.Validate(); err != nil || a.Terminal != sampleTerminal {
				t.Fatalf("verified invalid result acks %+v: %v", a, err)
			}
		} else if a != nil || Reason(err) == "" {
			t.Fatalf("refusal %v with result acks %+v", err, a)
		}
		if len(data) > MaxMessageBytes {
			return
		}
		if c, err := v.VerifyCancel(signRaw(t, key, jose.EdDSA, kid, TypeCancel, data)); err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("verified an invalid cancel: %v", err)
			}
		}
		if a, err := v.VerifyResultAck(signRaw(t, key, jose.EdDSA, kid, TypeResultAck, data)); err == nil {
			if err := a.Validate(); err != nil {
				t.Fatalf("verified an invalid ack: %v", err)
			}
		}
		if a, err := v.VerifyResultAcks(signRaw(t, key, jose.EdDSA, kid, TypeResultAcks, data)); err == nil {
			if err := a.Validate(); err != nil {
				t.Fatalf("verified invalid result acks: %v", err)
			}
			if a.Terminal != sampleTerminal {
				t.Fatalf("verified result acks for %s", a.Terminal)
			}
			if _, err := Encode(a); err != nil {
				t.Fatalf("verified result acks that do not encode: %v", err)
			}
		} else if a != nil || Reason(err) == "" {
			t.Fatalf("refusal %v with result acks %+v", err, a)
		}
		if r, err := v.VerifySyncRequest(signRaw(t, key, jose.EdDSA, kid, TypeSyncRequest, data)); err == nil {
			if err := r.Validate(); err != nil {
				t.Fatalf("verified an invalid sync request: %v", err)
			}
		}
		_, _ = UnverifiedRequestID(data)
	})
}
