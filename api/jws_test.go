package api

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func loadPrivate(t testing.TB, name string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keys", name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signRaw signs payload bytes as they are, with any header, so tests can
// build envelopes that Signer would refuse to make.
func signRaw(t testing.TB, key crypto.Signer, alg jose.SignatureAlgorithm, kid, typ string, payload []byte) []byte {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	var k any = key
	if kid != "" {
		k = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return []byte(out)
}

func kidOf(t testing.TB, name string) string {
	t.Helper()
	kid, err := KeyID(loadPublic(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifyJob(t *testing.T) {
	p256 := loadPrivate(t, "p256")
	ed := loadSigner(t, "ed25519")
	es := loadSigner(t, "p256")
	payload := []byte(mustEncode(sampleJob()))
	signJob := func(s *Signer, edit func(*Job)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			j := sampleJob()
			if edit != nil {
				edit(j)
			}
			env, err := s.SignJob(j)
			if err != nil {
				t.Fatal(err)
			}
			return env
		}
	}
	// unchecked builds a payload that SignJob's own validation would stop.
	unchecked := func(edit func(j *Job)) []byte {
		j := sampleJob()
		edit(j)
		b, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	raw := func(p []byte) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return signRaw(t, p256, jose.ES256, kidOf(t, "p256"), TypeJob, p) }
	}
	cases := []struct {
		name   string
		env    func(t *testing.T) []byte
		config func(v *Verifier)
		want   ReasonCode // "" means accepted
	}{
		{"ed25519", signJob(ed, nil), nil, ""},
		{"es256", signJob(es, nil), nil, ""},
		{"second trusted key after rotation", signJob(es, nil), func(v *Verifier) { delete(v.Keys, ed.KID()) }, ""},
		{"untrusted key", signJob(loadSigner(t, "p256-other"), nil), nil, ReasonUnknownKID},
		{"no kid", func(t *testing.T) []byte { return signRaw(t, p256, jose.ES256, "", TypeJob, payload) }, nil, ReasonUnknownKID},
		{"forged with another key under a trusted kid", func(t *testing.T) []byte {
			return signRaw(t, loadPrivate(t, "p256-other"), jose.ES256, kidOf(t, "p256"), TypeJob, payload)
		}, nil, ReasonBadSignature},
		{"payload swapped", func(t *testing.T) []byte {
			env := signJob(es, nil)(t)
			parts := strings.Split(string(env), ".")
			other := strings.Replace(string(payload), "Segera", "Biasa", 1)
			return []byte(parts[0] + "." + b64(other) + "." + parts[2])
		}, nil, ReasonBadSignature},
		{"signature flipped", func(t *testing.T) []byte {
			parts := strings.Split(string(signJob(es, nil)(t)), ".")
			sig, err := base64.RawURLEncoding.DecodeString(parts[2])
			if err != nil {
				t.Fatal(err)
			}
			sig[10] ^= 0x01
			return []byte(parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig))
		}, nil, ReasonBadSignature},
		{"alg none", func(t *testing.T) []byte {
			return []byte(b64(`{"alg":"none","kid":"`+kidOf(t, "p256")+`","typ":"teken-job+jws"}`) + "." + b64(string(payload)) + ".")
		}, nil, ReasonUnsupportedAlg},
		{"alg HS256", func(t *testing.T) []byte {
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: kidOf(t, "p256")}}, (&jose.SignerOptions{}).WithType(TypeJob))
			if err != nil {
				t.Fatal(err)
			}
			obj, _ := s.Sign(payload)
			out, _ := obj.CompactSerialize()
			return []byte(out)
		}, nil, ReasonUnsupportedAlg},
		{"result ack replayed as job", func(t *testing.T) []byte {
			env, err := es.SignResultAck(sampleResultAck())
			if err != nil {
				t.Fatal(err)
			}
			return env
		}, nil, ReasonWrongType},
		{"job payload under another typ", func(t *testing.T) []byte { return signRaw(t, p256, jose.ES256, kidOf(t, "p256"), TypeCancel, payload) }, nil, ReasonWrongType},
		{"no typ", func(t *testing.T) []byte { return signRaw(t, p256, jose.ES256, kidOf(t, "p256"), "", payload) }, nil, ReasonWrongType},
		{"typ with application prefix", func(t *testing.T) []byte {
			return signRaw(t, p256, jose.ES256, kidOf(t, "p256"), "application/Teken-Job+JWS", payload)
		}, nil, ""},
		{"wrong terminal", signJob(es, func(j *Job) { j.Terminal = "baubau-setda-02" }), nil, ReasonWrongTerminal},
		{"expired", signJob(es, nil), func(v *Verifier) { v.Now = func() time.Time { return t0.Add(7*24*time.Hour + v.Skew + time.Second) } }, ReasonExpired},
		{"expired within skew", signJob(es, nil), func(v *Verifier) { v.Now = func() time.Time { return t0.Add(7*24*time.Hour + v.Skew/2) } }, ""},
		{"not yet valid", signJob(es, nil), func(v *Verifier) { v.Now = func() time.Time { return t0.Add(-v.Skew - time.Second) } }, ReasonNotYetValid},
		{"early within skew", signJob(es, nil), func(v *Verifier) { v.Now = func() time.Time { return t0.Add(-v.Skew / 2) } }, ""},
		{"window too long", signJob(es, func(j *Job) { j.ExpiresAt = j.IssuedAt.Add(DefaultMaxLifetime + time.Hour) }), nil, ReasonMalformed},
		{"expires before issued", raw(bytes.Replace(payload, []byte(`"expires_at":"2026-01-12T01:00:00.000Z"`), []byte(`"expires_at":"2026-01-04T01:00:00.000Z"`), 1)), nil, ReasonMalformed},
		{"envelope too large", func(t *testing.T) []byte { return bytes.Repeat([]byte("a"), testVerifier(t).MaxJobEnvelope()+1) }, nil, ReasonTooLarge},
		{"content over the configured limit", signJob(es, nil), func(v *Verifier) { v.MaxContentBytes = 100 }, ReasonTooLarge},
		{"hash mismatch", raw(bytes.Replace(payload, []byte("dd2e7736"), []byte("dd2e7737"), 1)), nil, ReasonHashMismatch},
		{"hash only refused", signJob(es, func(j *Job) { j.Documents[1].Content = nil }), nil, ReasonHashOnlyRefused},
		{"hash only allowed", signJob(es, func(j *Job) { j.Documents[1].Content = nil }), func(v *Verifier) { v.AllowHashOnly = true }, ""},
		{"pades for a PDF", raw(bytes.Replace(payload, []byte(`"format":"raw"`), []byte(`"format":"pades"`), 1)), nil, ""},
		{"pades for text", raw(unchecked(func(j *Job) { j.Documents[0].Format = FormatPAdES })), nil, ReasonUnsupportedFormat},
		{"pades without content", raw(unchecked(func(j *Job) { j.Documents[1].Format = FormatPAdES; j.Documents[1].Content = nil })), func(v *Verifier) { v.AllowHashOnly = true }, ReasonUnsupportedFormat},
		{"visible needs pades", raw(unchecked(func(j *Job) { j.Documents[1].Visible = &Visible{Page: 1} })), nil, ReasonMalformed},
		{"visible rect inverted", raw(unchecked(func(j *Job) {
			j.Documents[1].Format = FormatPAdES
			j.Documents[1].Visible = &Visible{Rect: []float64{300, 100, 100, 200}}
		})), nil, ReasonMalformed},
		{"visible verify URL not http", raw(unchecked(func(j *Job) {
			j.Documents[1].Format = FormatPAdES
			j.Documents[1].Visible = &Visible{VerifyURL: "javascript:alert(1)"}
		})), nil, ReasonMalformed},
		{"visible accepted", signJob(es, func(j *Job) {
			j.Documents[1].Format = FormatPAdES
			j.Documents[1].Visible = &Visible{Page: 1, Rect: []float64{350, 40, 560, 120}, VerifyURL: "https://tte.sultraprov.go.id/v/abc"}
		}), nil, ""},
		{"unknown field", raw(bytes.Replace(payload, []byte(`{"v":1,`), []byte(`{"v":1,"auto_sign":true,`), 1)), nil, ReasonMalformed},
		{"field in upper case", raw(bytes.Replace(payload, []byte(`"title"`), []byte(`"TITLE"`), 1)), nil, ReasonMalformed},
		{"duplicate key", raw(bytes.Replace(payload, []byte(`{"v":1,`), []byte(`{"v":1,"terminal":"baubau-setda-02",`), 1)), nil, ReasonMalformed},
		{"version 3", raw(bytes.Replace(payload, []byte(`{"v":1,`), []byte(`{"v":3,`), 1)), nil, ReasonUnsupportedVersion},
		{"payload not JSON", raw([]byte("surat")), nil, ReasonMalformed},
		{"trailing data", raw(append(bytes.Clone(payload), []byte(`{}`)...)), nil, ReasonMalformed},
		{"lower-case ulid", raw(bytes.Replace(payload, []byte(sampleJobID), []byte(strings.ToLower(sampleJobID)), 1)), nil, ReasonMalformed},
		{"not a jws", func(*testing.T) []byte { return []byte("hello") }, nil, ReasonMalformed},
		{"json serialization", func(*testing.T) []byte { return []byte(`{"payload":"e30","signatures":[]}`) }, nil, ReasonMalformed},
		{"empty", func(*testing.T) []byte { return nil }, nil, ReasonMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := testVerifier(t)
			if c.config != nil {
				c.config(v)
			}
			j, _, err := v.VerifyJob(c.env(t))
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if j.JobID != sampleJobID || len(j.Documents) != 2 {
					t.Errorf("verified job %+v", j)
				}
				return
			}
			var r *RefusalError
			if !errors.As(err, &r) {
				t.Fatalf("got %v (%T), want refusal %s", err, err, c.want)
			}
			if r.Reason != c.want {
				t.Errorf("reason %s (%s), want %s", r.Reason, r.Detail, c.want)
			}
			if j != nil {
				t.Errorf("refused job returned: %+v", j)
			}
			if !errors.Is(err, &RefusalError{Reason: c.want}) || Reason(err) != c.want {
				t.Errorf("errors.Is / Reason do not match %s", c.want)
			}
		})
	}
}

func TestVerifyControl(t *testing.T) {
	es := loadSigner(t, "p256")
	cancel, err := es.SignCancel(sampleCancel())
	if err != nil {
		t.Fatal(err)
	}
	ack, err := es.SignResultAck(sampleResultAck())
	if err != nil {
		t.Fatal(err)
	}
	job, err := es.SignJob(sampleJob())
	if err != nil {
		t.Fatal(err)
	}
	v := testVerifier(t)
	v.Now = func() time.Time { return t0.Add(3 * time.Hour) }

	if typ, err := ControlType(cancel); err != nil || typ != TypeCancel {
		t.Errorf("ControlType(cancel) = %q, %v", typ, err)
	}
	if typ, err := ControlType(ack); err != nil || typ != TypeResultAck {
		t.Errorf("ControlType(ack) = %q, %v", typ, err)
	}
	if kid, err := EnvelopeKID(job); err != nil || kid != es.KID() {
		t.Errorf("EnvelopeKID = %q, %v; want %q", kid, err, es.KID())
	}
	c, err := v.VerifyCancel(cancel)
	if err != nil || !reflect.DeepEqual(c, sampleCancel()) {
		t.Errorf("VerifyCancel = %+v, %v", c, err)
	}
	a, err := v.VerifyResultAck(ack)
	if err != nil || !reflect.DeepEqual(a, sampleResultAck()) {
		t.Errorf("VerifyResultAck = %+v, %v", a, err)
	}
	for _, c := range []struct {
		name string
		err  error
		want ReasonCode
	}{
		{"cancel as ack", second(v.VerifyResultAck(cancel)), ReasonWrongType},
		{"ack as cancel", second(v.VerifyCancel(ack)), ReasonWrongType},
		{"job as cancel", second(v.VerifyCancel(job)), ReasonWrongType},
		{"cancel as job", third(v.VerifyJob(cancel)), ReasonWrongType},
		{"ack for another terminal", second((&Verifier{Keys: v.Keys, Terminal: "baubau-setda-02", Now: v.Now}).VerifyResultAck(ack)), ReasonWrongTerminal},
		{"cancel expired", second((&Verifier{Keys: v.Keys, Terminal: sampleTerminal, Now: func() time.Time { return t0.Add(30 * time.Hour) }}).VerifyCancel(cancel)), ReasonExpired},
		{"cancel too large", second(v.VerifyCancel(bytes.Repeat([]byte("."), 2<<20))), ReasonTooLarge},
	} {
		if Reason(c.err) != c.want {
			t.Errorf("%s: %v, want %s", c.name, c.err, c.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func third[T, U any](_ T, _ U, err error) error { return err }

func TestSignerRefusesInvalid(t *testing.T) {
	es := loadSigner(t, "p256")
	j := sampleJob()
	j.Documents[0].SHA256 = sampleCertHash
	if _, err := es.SignJob(j); Reason(err) != ReasonHashMismatch {
		t.Errorf("SignJob with a wrong hash: %v", err)
	}
	if _, err := es.SignCancel(&Cancel{V: Version}); err == nil {
		t.Error("SignCancel signed an empty cancel")
	}
	var nilSigner *Signer
	if _, err := nilSigner.SignResultAck(sampleResultAck()); err == nil {
		t.Error("nil signer signed")
	}
	if _, err := nilSigner.SignResultAcks(sampleResultAcks()); err == nil {
		t.Error("nil signer signed result acks")
	}
}

func TestUnverifiedJobID(t *testing.T) {
	env, err := loadSigner(t, "p256-other").SignJob(sampleJob())
	if err != nil {
		t.Fatal(err)
	}
	if id, err := UnverifiedJobID(env); err != nil || id != sampleJobID {
		t.Errorf("UnverifiedJobID(untrusted envelope) = %q, %v", id, err)
	}
	for _, bad := range [][]byte{nil, []byte("a.b.c"), []byte(`{"payload":"e30","signatures":[]}`)} {
		if id, err := UnverifiedJobID(bad); err == nil {
			t.Errorf("UnverifiedJobID(%q) = %q", bad, id)
		}
	}
}

// TestVerifyJobNamesTheKey: the kid VerifyJob returns is the one of the key
// that signed, so a Result can name it without parsing the header again.
func TestVerifyJobNamesTheKey(t *testing.T) {
	v := testVerifier(t)
	for _, name := range []string{"p256", "ed25519"} {
		s := loadSigner(t, name)
		env, err := s.SignJob(sampleJob())
		if err != nil {
			t.Fatal(err)
		}
		_, kid, err := v.VerifyJob(env)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if kid != s.KID() || kid != kidOf(t, name) {
			t.Errorf("%s: kid %q, want %q", name, kid, s.KID())
		}
	}
}
