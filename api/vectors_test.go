package api

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// The test vectors for integrators (testdata/vectors, see its README.md)
// tell one story: a job signed with each test dispatcher key, what the
// terminal answers to it and to the control messages, and the signed
// result. Every file is made here, from inputs committed once (the signer
// PKI under pki/ and the documents under documents/), and `go test ./api
// -run 'Golden|Vectors' -update` writes them again byte for byte: Ed25519
// is deterministic, and ES256 is signed with RFC 6979 nonces (Go's
// crypto/ecdsa signs so when given no random source, Go 1.24 and later).

var vectorsDir = filepath.Join("testdata", "vectors")

// Times of the story, after t0 (2026-01-05T01:00:00Z), when the job is issued.
var (
	vSyncConnectAt = t0.Add(10 * time.Minute)
	vSyncRequestAt = t0.Add(time.Hour)
	vSignedAt      = t0.Add(90 * time.Minute)
	vAckAt         = t0.Add(2 * time.Hour)
	vAcksAt        = t0.Add(150 * time.Minute)
	vCancelAt      = t0.Add(3 * time.Hour)
	vExpiredAt     = time.Date(2026, 1, 13, 8, 0, 0, 0, time.UTC)
)

const vRequestID = "3f2b8c1e-5a4d-4e6f-9b7a-2c1d0e9f8a7b"

// vectorFile is one generated file of the vectors directory.
type vectorFile struct {
	name string
	data []byte
}

// vectorSet is every generated file, the manifest last, and the messages
// the golden files share with it.
type vectorSet struct {
	files    []vectorFile
	manifest manifest

	// The inputs.
	ed        *Signer
	p256      *ecdsa.PrivateKey
	trust     map[string]crypto.PublicKey
	signer    *x509.Certificate
	signerKey crypto.Signer
	roots     *x509.CertPool
	documents map[string][]byte // document id → bytes

	// Messages also pinned under testdata/golden.
	job      *Job
	cancel   *Cancel
	ack      *ResultAck
	acks     *ResultAcks
	syncReq  *SyncRequest
	result   *Result
	receipts map[string]*Receipt // by file name without .json
}

func (s *vectorSet) add(name string, data []byte) { s.files = append(s.files, vectorFile{name, data}) }

func (s *vectorSet) file(name string) []byte {
	for _, f := range s.files {
		if f.name == name {
			return f.data
		}
	}
	panic("no vector file " + name)
}

// vectors builds the set once per test binary; golden() shares it.
var vectors = sync.OnceValues(buildVectors)

// mustVectors is vectors for callers without a testing.T.
func mustVectors() *vectorSet {
	s, err := vectors()
	if err != nil {
		panic(fmt.Sprintf("build test vectors from %s: %v", vectorsDir, err))
	}
	return s
}

func buildVectors() (*vectorSet, error) {
	s := &vectorSet{receipts: map[string]*Receipt{}, documents: map[string][]byte{}, trust: map[string]crypto.PublicKey{}}
	s.manifest.Comment = "Teken test vectors: TEST KEYS AND CERTIFICATES ONLY, NEVER FOR PRODUCTION. Written by `go test ./api -run 'Golden|Vectors' -update`; see README.md."
	s.manifest.Terminal = sampleTerminal
	for _, step := range []struct {
		what string
		do   func() error
	}{
		{"read the inputs", s.readInputs},
		{"sign the envelopes", s.signEnvelopes},
		{"answer them", s.answer},
		{"sign the documents", s.signDocuments},
		{"answer the control messages", s.answerControl},
		{"publish the terminal's messages", s.publish},
		{"write the manifest", s.writeManifest},
	} {
		if err := step.do(); err != nil {
			return nil, fmt.Errorf("%s: %w", step.what, err)
		}
	}
	return s, nil
}

// readInputs reads the test dispatcher keys, the signer PKI and the
// documents.
func (s *vectorSet) readInputs() error {
	edKey, err := readKey("ed25519")
	if err != nil {
		return err
	}
	p256, err := readKey("p256")
	if err != nil {
		return err
	}
	s.p256 = p256.(*ecdsa.PrivateKey)
	if s.ed, err = NewSigner(edKey); err != nil {
		return err
	}
	for _, k := range []struct {
		name string
		key  crypto.Signer
	}{{"ed25519", edKey}, {"p256", p256}} {
		alg, _ := Algorithm(k.key)
		kid, err := KeyID(k.key.Public())
		if err != nil {
			return err
		}
		s.trust[kid] = k.key.Public()
		s.manifest.Keys = append(s.manifest.Keys, manifestKey{Name: k.name, Alg: alg,
			PrivateKey: "../keys/" + k.name + ".pem", PublicKey: "../keys/" + k.name + ".pub.pem",
			JWK: thumbprintInput(k.key.Public()), KID: kid})
	}
	caDER, err := readVectorPEM("pki/ca.pem", "CERTIFICATE")
	if err != nil {
		return err
	}
	certDER, err := readVectorPEM("pki/signer.pem", "CERTIFICATE")
	if err != nil {
		return err
	}
	keyDER, err := readVectorPEM("pki/signer.key.pem", "PRIVATE KEY")
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if s.signer, err = x509.ParseCertificate(certDER); err != nil {
		return err
	}
	key, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return err
	}
	s.signerKey = rfc6979{key.(*ecdsa.PrivateKey)}
	s.roots = x509.NewCertPool()
	s.roots.AddCert(ca)
	s.manifest.Signer = manifestSigner{Certificate: "pki/signer.pem", PrivateKey: "pki/signer.key.pem", CA: "pki/ca.pem", CertSHA256: EnvelopeSHA256(certDER)}
	for id, name := range vectorDocuments {
		if s.documents[id], err = os.ReadFile(filepath.Join(vectorsDir, name)); err != nil {
			return err
		}
	}
	return nil
}

// signEnvelopes writes each signed message's payload and its envelopes.
func (s *vectorSet) signEnvelopes() error {
	s.job = vectorJob(s.signer, s.documents)
	conflict := vectorJob(s.signer, s.documents)
	conflict.Title = "Undangan rapat koordinasi (ralat)"
	s.cancel = &Cancel{V: Version, JobID: sampleJobID, Terminal: sampleTerminal, IssuedAt: vCancelAt, ExpiresAt: vCancelAt.Add(24 * time.Hour), Reason: "surat ditarik oleh pengirim"}
	s.ack = &ResultAck{V: Version, JobID: sampleJobID, Terminal: sampleTerminal, IssuedAt: vAckAt, ExpiresAt: vAckAt.Add(24 * time.Hour)}
	// An edition 4 central system's batch: this job, already acknowledged,
	// and two the terminal never had.
	s.acks = &ResultAcks{V: Version, Terminal: sampleTerminal, JobIDs: []string{sampleJobID, "01JGZ9A0B1C2D3E4F5G6H7J8K9", "0f8fad5b-d9cb-469f-a165-70867728950e"}, IssuedAt: vAcksAt, ExpiresAt: vAcksAt.Add(24 * time.Hour)}
	s.syncReq = &SyncRequest{V: Version, Terminal: sampleTerminal, RequestID: vRequestID, IssuedAt: vSyncRequestAt, ExpiresAt: vSyncRequestAt.Add(15 * time.Minute)}
	for _, e := range []struct {
		base     string
		msg      Message
		typ      string
		at       map[string]time.Time // when each variant arrives ("": the others)
		variants []string
	}{
		{"job", s.job, TypeJob, map[string]time.Time{"": t0.Add(time.Minute), "es256": t0.Add(2 * time.Minute), "es256-der": t0.Add(4 * time.Minute)}, []string{"ed25519", "es256", "es256-der"}},
		{"job-conflict", conflict, TypeJob, map[string]time.Time{"": t0.Add(3 * time.Minute)}, []string{"ed25519"}},
		{"sync-request", s.syncReq, TypeSyncRequest, map[string]time.Time{"": vSyncRequestAt.Add(2 * time.Second)}, []string{"ed25519", "es256"}},
		{"result-ack", s.ack, TypeResultAck, map[string]time.Time{"": vAckAt.Add(time.Second), "es256": vAckAt.Add(2 * time.Second)}, []string{"ed25519", "es256"}},
		{"result-acks", s.acks, TypeResultAcks, map[string]time.Time{"": vAcksAt.Add(time.Second), "es256": vAcksAt.Add(2 * time.Second)}, []string{"ed25519", "es256"}},
		{"cancel", s.cancel, TypeCancel, map[string]time.Time{"": vCancelAt.Add(time.Second)}, []string{"ed25519", "es256"}},
	} {
		payload, err := Encode(e.msg)
		if err != nil {
			return fmt.Errorf("%s: %w", e.base, err)
		}
		s.add(e.base+".json", payload)
		for _, name := range e.variants {
			vr := envelopeVariants[name]
			alg, kid := AlgEdDSA, s.ed.KID()
			var env []byte
			if vr.key == "ed25519" {
				env, err = s.ed.sign(e.msg, e.typ) // what SignJob, SignCancel, … do
			} else {
				alg, kid = AlgES256, s.manifest.Keys[1].KID
				env, err = signES256(s.p256, e.typ, payload, vr.der)
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", e.base, name, err)
			}
			file := e.base + vr.suffix
			s.add(file, env)
			header, _ := base64.RawURLEncoding.DecodeString(jwsHeader(alg, kid, e.typ))
			s.manifest.Envelopes = append(s.manifest.Envelopes, manifestEnvelope{File: file, Payload: e.base + ".json", Typ: e.typ, Key: vr.key,
				Header: string(header), Deterministic: true, VerifyAt: at(cmpOr(e.at[name], e.at[""])), Expect: vr.expect, SHA256: EnvelopeSHA256(env)})
		}
	}
	return nil
}

// verifier is the terminal's, at a time of the story.
func (s *vectorSet) verifier(now time.Time) *Verifier {
	return &Verifier{Keys: s.trust, Terminal: sampleTerminal, Skew: DefaultSkew, Now: func() time.Time { return now }}
}

func (s *vectorSet) receipt(name, envelope, stored string, r *Receipt) {
	s.receipts[name] = r
	s.manifest.Receipts = append(s.manifest.Receipts, manifestReceipt{File: name + ".json", Envelope: envelope, StoredEnvelope: stored})
}

// answer makes the terminal's receipts for the job envelopes, in the
// order of the story.
func (s *vectorSet) answer() error {
	jobEnv, jobES, jobDER, conflictEnv := s.file("job.ed25519.jws"), s.file("job.es256.jws"), s.file("job-der.es256.jws"), s.file("job-conflict.ed25519.jws")
	_, _, err := s.verifier(t0.Add(time.Minute)).VerifyJob(jobEnv)
	if err != nil {
		return fmt.Errorf("job.ed25519.jws: %w", err)
	}
	s.receipt("receipt-stored", "job.ed25519.jws", "", terminalReceipt(jobEnv, ForJob, t0.Add(time.Minute), nil))
	// The same payload signed by the other key is the same job.
	if _, _, err := s.verifier(t0.Add(2 * time.Minute)).VerifyJob(jobES); err != nil || !SamePayload(jobEnv, jobES) {
		return fmt.Errorf("job.es256.jws: %v, or another payload", err)
	}
	dup := terminalReceipt(jobES, ForJob, t0.Add(2*time.Minute), nil)
	dup.Status = ReceiptDuplicate
	s.receipt("receipt-duplicate", "job.es256.jws", "", dup)
	// Another payload under the same id.
	if _, _, err := s.verifier(t0.Add(3 * time.Minute)).VerifyJob(conflictEnv); err != nil || SamePayload(jobEnv, conflictEnv) {
		return fmt.Errorf("job-conflict.ed25519.jws: %v, or the same payload", err)
	}
	held := EnvelopeSHA256(jobEnv)
	conflict := terminalReceipt(conflictEnv, ForJob, t0.Add(3*time.Minute), nil)
	conflict.Status, conflict.Reason, conflict.StoredEnvelopeSHA256 = ReceiptRefused, ReasonConflict, held
	conflict.Detail = "job id " + sampleJobID + " is held with another envelope (sha256 " + held + "); a job id names one envelope: send a new job id"
	s.receipt("receipt-conflict", "job-conflict.ed25519.jws", "job.ed25519.jws", conflict)
	// ES256 as DER.
	if _, _, err = s.verifier(t0.Add(4 * time.Minute)).VerifyJob(jobDER); Reason(err) != ReasonBadSignature {
		return fmt.Errorf("job-der.es256.jws: %v, want bad_signature", err)
	}
	s.receipt("receipt-refused-der", "job-der.es256.jws", "", terminalReceipt(jobDER, ForJob, t0.Add(4*time.Minute), err))
	// A central system that publishes the job JSON itself, unsigned.
	_, _, err = s.verifier(t0.Add(5 * time.Minute)).VerifyJob(s.file("job.json"))
	s.receipt("receipt-refused-unsigned", "job.json", "", terminalReceipt(s.file("job.json"), ForJob, t0.Add(5*time.Minute), err))
	// The stored job arriving again after its window.
	_, _, err = s.verifier(vExpiredAt).VerifyJob(jobEnv)
	s.receipt("receipt-refused-expired", "job.ed25519.jws", "", terminalReceipt(jobEnv, ForJob, vExpiredAt, err))

	// A SyncRequest: the job's receipt again. Its other copy arrives late.
	if _, err := s.verifier(vSyncRequestAt.Add(2 * time.Second)).VerifySyncRequest(s.file("sync-request.ed25519.jws")); err != nil {
		return fmt.Errorf("sync-request.ed25519.jws: %w", err)
	}
	resent := terminalReceipt(jobEnv, ForJob, vSyncRequestAt.Add(2*time.Second), nil)
	resent.For, resent.Resent = ForJob, true
	s.receipt("receipt-resent", "job.ed25519.jws", "", resent)
	_, err = s.verifier(vAckAt).VerifySyncRequest(s.file("sync-request.es256.jws"))
	s.receipt("receipt-sync-request-expired", "sync-request.es256.jws", "", terminalReceipt(s.file("sync-request.es256.jws"), ForSyncRequest, vAckAt, err))
	return nil
}

// signDocuments makes the result, with the engines tekend uses.
func (s *vectorSet) signDocuments() error {
	var err error
	if s.result, err = vectorResult(s, s.signerKey, s.ed.KID()); err != nil {
		return err
	}
	b, err := Encode(s.result)
	if err != nil {
		return err
	}
	s.add("result-signed.json", b)
	s.manifest.Results = append(s.manifest.Results, manifestResult{File: "result-signed.json", Job: "job.json", Envelope: "job.ed25519.jws", Documents: vectorDocuments, Signatures: signatureFiles})
	for _, d := range s.result.Documents {
		s.add(signatureFiles[d.ID], d.Signature)
	}
	return nil
}

// answerControl makes the receipts of the ack's second copy, of the batch's
// late copy and of the late cancel.
func (s *vectorSet) answerControl() error {
	for _, name := range []string{"result-ack.ed25519.jws", "result-ack.es256.jws"} {
		if _, err := s.verifier(vAckAt.Add(time.Second)).VerifyResultAck(s.file(name)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	dup := terminalReceipt(s.file("result-ack.es256.jws"), ForResultAck, vAckAt.Add(2*time.Second), nil)
	dup.Status, dup.Detail = ReceiptDuplicate, "already acknowledged"
	s.receipt("receipt-result-ack-duplicate", "result-ack.es256.jws", "", dup)
	// The batch changes nothing and, being valid, gets no receipt; its
	// other copy arrives after its window.
	if _, err := s.verifier(vAcksAt.Add(time.Second)).VerifyResultAcks(s.file("result-acks.ed25519.jws")); err != nil {
		return fmt.Errorf("result-acks.ed25519.jws: %w", err)
	}
	_, err := s.verifier(vExpiredAt).VerifyResultAcks(s.file("result-acks.es256.jws"))
	if Reason(err) != ReasonExpired {
		return fmt.Errorf("result-acks.es256.jws at %s: %v, want expired", at(vExpiredAt), err)
	}
	s.receipt("receipt-result-acks-expired", "result-acks.es256.jws", "", terminalReceipt(s.file("result-acks.es256.jws"), ForResultAcks, vExpiredAt, err))
	if _, err := s.verifier(vCancelAt.Add(time.Second)).VerifyCancel(s.file("cancel.ed25519.jws")); err != nil {
		return fmt.Errorf("cancel.ed25519.jws: %w", err)
	}
	late := terminalReceipt(s.file("cancel.ed25519.jws"), ForCancel, vCancelAt.Add(time.Second), nil)
	late.Status, late.Reason, late.Detail = ReceiptRefused, ReasonTooLate, "the job has ended: signed"
	s.receipt("receipt-cancel-too-late", "cancel.ed25519.jws", "", late)
	return nil
}

// publish writes the receipts and what the terminal publishes on its own.
func (s *vectorSet) publish() error {
	for _, r := range s.manifest.Receipts {
		b, err := Encode(s.receipts[strings.TrimSuffix(r.File, ".json")])
		if err != nil {
			return fmt.Errorf("%s: %w", r.File, err)
		}
		s.add(r.File, b)
	}
	no := false
	for _, msg := range []struct {
		name string
		m    Message
	}{
		{"sync-connect", &Sync{V: Version, Terminal: sampleTerminal, At: vSyncConnectAt, JobsWaiting: []string{sampleJobID}, Trigger: SyncOnConnect, SessionPresent: &no}},
		{"sync-answer", &Sync{V: Version, Terminal: sampleTerminal, At: vSyncRequestAt.Add(2 * time.Second), JobsWaiting: []string{sampleJobID}, Trigger: SyncOnRequest, RequestID: vRequestID}},
		{"sync-interval", &Sync{V: Version, Terminal: sampleTerminal, At: vSignedAt.Add(3 * time.Minute), ResultsUndelivered: []string{sampleJobID}, Trigger: SyncOnInterval}},
		{"status-online", &Status{V: Version, Terminal: sampleTerminal, State: StateOnline, Version: "1.0.0", JobsWaiting: 1, Since: vSyncConnectAt, Edition: Edition}},
	} {
		b, err := Encode(msg.m)
		if err != nil {
			return fmt.Errorf("%s: %w", msg.name, err)
		}
		s.add(msg.name+".json", b)
	}
	return nil
}

// writeManifest names the schema of every message and writes manifest.json.
func (s *vectorSet) writeManifest() error {
	for _, f := range s.files {
		if schema := schemaOf(f.name); schema != "" {
			s.manifest.Messages = append(s.manifest.Messages, manifestMessage{File: f.name, Schema: schema})
		}
	}
	slices.SortFunc(s.manifest.Messages, func(a, b manifestMessage) int { return strings.Compare(a.File, b.File) })
	b, err := json.MarshalIndent(s.manifest, "", "  ")
	if err != nil {
		return err
	}
	s.add("manifest.json", append(b, '\n'))
	return nil
}

// schemaOf names the schema of a generated JSON message by its file name.
func schemaOf(name string) string {
	if !strings.HasSuffix(name, ".json") {
		return ""
	}
	for _, p := range []struct{ prefix, schema string }{
		{"job", "job"}, {"cancel", "cancel"}, {"result-acks", "result-acks"}, {"result-ack", "result-ack"}, {"sync-request", "sync-request"},
		{"receipt-", "receipt"}, {"result-signed", "result"}, {"sync-", "sync"}, {"status-", "status"},
	} {
		if strings.HasPrefix(name, p.prefix) {
			return p.schema
		}
	}
	return ""
}
