package api

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// TestOpenSSLEnvelope checks that an envelope built without this package —
// examples/dispatch-openssl.sh, openssl and shell only — verifies, for both
// key types, and that the script derives the same kid.
func TestOpenSSLEnvelope(t *testing.T) {
	openssl := testenv.LookPath(t, "openssl")
	testenv.LookPath(t, "perl")
	sh := testenv.LookPath(t, "sh")
	script, err := filepath.Abs(filepath.Join("..", "examples", "dispatch-openssl.sh"))
	if err != nil {
		t.Fatal(err)
	}
	jobPayload, err := filepath.Abs(filepath.Join("..", "examples", "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ackPayload, acksPayload := filepath.Join(dir, "ack.json"), filepath.Join(dir, "acks.json")
	if err := os.WriteFile(ackPayload, []byte(mustEncode(sampleResultAck())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(acksPayload, []byte(mustEncode(sampleResultAcks())), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ name, alg string }{
		{"ec", "ES256"},
		{"ed25519", "EdDSA"},
	} {
		t.Run(k.alg, func(t *testing.T) {
			key := filepath.Join(dir, k.name+".pem")
			args := []string{"genpkey", "-algorithm", "ed25519", "-out", key}
			if k.name == "ec" {
				args = []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key}
			}
			if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
				t.Fatalf("openssl genpkey: %v\n%s", err, out)
			}
			pemBytes, err := os.ReadFile(key)
			if err != nil {
				t.Fatal(err)
			}
			priv, err := ParsePrivateKeyPEM(pemBytes)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := KeySet(priv.Public())
			if err != nil {
				t.Fatal(err)
			}
			v := &Verifier{Keys: keys, Terminal: sampleTerminal, Now: func() time.Time { return t0.Add(3 * time.Hour) }, Skew: DefaultSkew}

			run := func(payload, typ string) []byte {
				t.Helper()
				cmd := exec.Command(sh, script, key, payload, typ)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("%s: %v\n%s", script, err, stderr.Bytes())
				}
				return bytes.TrimSpace(out)
			}
			// ECDSA signatures are randomised: a few runs exercise r and s
			// of different lengths in the DER to R||S conversion.
			runs := 1
			if k.alg == AlgES256 {
				runs = 3
			}
			for range runs {
				env := run(jobPayload, TypeJob)
				j, _, err := v.VerifyJob(env)
				if err != nil {
					t.Fatalf("VerifyJob(openssl envelope): %v\n%s", err, env)
				}
				if j.JobID != sampleJobID || j.Documents[0].Size != 67 {
					t.Errorf("job %+v", j)
				}
				if kid, _ := EnvelopeKID(env); keys[kid] == nil {
					t.Errorf("script kid %q is not KeyID %v", kid, keys)
				}
			}
			env := run(ackPayload, TypeResultAck)
			if _, err := v.VerifyResultAck(env); err != nil {
				t.Errorf("VerifyResultAck(openssl envelope): %v", err)
			}
			if _, _, err := v.VerifyJob(env); Reason(err) != ReasonWrongType {
				t.Errorf("ack verified as job: %v", err)
			}
			env = run(acksPayload, TypeResultAcks)
			if a, err := v.VerifyResultAcks(env); err != nil || len(a.JobIDs) != 3 {
				t.Errorf("VerifyResultAcks(openssl envelope): %+v, %v", a, err)
			}
		})
	}
}
