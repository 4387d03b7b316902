package api

import (
	"crypto"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// t0 is the instant the sample messages were issued; tests set their clocks
// relative to it.
var t0 = time.Date(2026, 1, 5, 1, 0, 0, 0, time.UTC)

const (
	sampleTerminal = "kendari-setda-01"
	sampleJobID    = "01JGZ8Q4T5V6W7X8Y9Z0ABCDEF"
	sampleCertHash = "6b1d8a1c3f0e5a2b4c7d9e8f0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
)

func sampleJob() *Job {
	return &Job{
		V: Version, JobID: sampleJobID, Terminal: sampleTerminal,
		IssuedAt: t0, ExpiresAt: t0.Add(7 * 24 * time.Hour),
		Signer: Signatory{CertSHA256: sampleCertHash, NIP: "197001012000031001", Name: "Drs. La Ode Budiman, M.Si."},
		Title:  "Undangan rapat koordinasi", Number: "005/123/SETDA/2026",
		Sender: "Sekretariat Daerah Provinsi Sulawesi Tenggara",
		Fields: []Field{{Label: "Sifat", Value: "Segera"}},
		Documents: []Document{
			NewDocument("surat", "undangan-rapat.txt", "text/plain", []byte("Undangan rapat koordinasi, Senin 5 Januari 2026, pukul 09.00 WITA.\n")),
			func() Document {
				d := NewDocument("lampiran-1", "daftar-hadir.pdf", "application/pdf", []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"))
				d.Format = FormatRaw
				return d
			}(),
		},
	}
}

func sampleCancel() *Cancel {
	return &Cancel{V: Version, JobID: sampleJobID, Terminal: sampleTerminal, IssuedAt: t0.Add(time.Hour), ExpiresAt: t0.Add(25 * time.Hour), Reason: "surat ditarik oleh pengirim"}
}

func sampleResultAck() *ResultAck {
	return &ResultAck{V: Version, JobID: sampleJobID, Terminal: sampleTerminal, IssuedAt: t0.Add(2 * time.Hour), ExpiresAt: t0.Add(26 * time.Hour)}
}

// sampleResultAcks acknowledges the sample job and two others, a ULID and a
// UUID, at the time of sampleResultAck.
func sampleResultAcks() *ResultAcks {
	return &ResultAcks{V: Version, Terminal: sampleTerminal, JobIDs: []string{sampleJobID, "01JGZ9A0B1C2D3E4F5G6H7J8K9", "0f8fad5b-d9cb-469f-a165-70867728950e"},
		IssuedAt: t0.Add(2 * time.Hour), ExpiresAt: t0.Add(26 * time.Hour)}
}

func sampleSignedResult() *Result {
	return &Result{
		V: Version, JobID: sampleJobID, Terminal: sampleTerminal, KID: "Zk9q0u2y3Hc7rS1n5Qm8aLx4Bd6Vf0Eg2Wt9Kp3Jh1A",
		Outcome:    OutcomeSigned,
		SignerCert: []byte{0x30, 0x82, 0x01, 0x0a, 0x02, 0x01, 0x01},
		Documents: []SignedDocument{
			{ID: "surat", SHA256: "dd2e7736d3bcdc0ff925115f507f96a378a87366eb7b8a5e3784f6338c784107", Format: FormatCMS, Signature: []byte{0x30, 0x80, 0x06, 0x09}, SignedAt: t0.Add(90 * time.Minute)},
			{ID: "lampiran-1", SHA256: sampleCertHash, Format: FormatRaw, Signature: []byte{0x30, 0x45, 0x02, 0x21}, SignedAt: t0.Add(90 * time.Minute)},
		},
		CompletedAt: t0.Add(91 * time.Minute),
	}
}

func loadSigner(t testing.TB, name string) *Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keys", name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func loadPublic(t testing.TB, name string) crypto.PublicKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keys", name+".pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParsePublicKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// testVerifier trusts the ed25519 and p256 test keys, for sampleTerminal, at
// t0 plus one hour.
func testVerifier(t testing.TB) *Verifier {
	t.Helper()
	keys, err := KeySet(loadPublic(t, "ed25519"), loadPublic(t, "p256"))
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	return &Verifier{Keys: keys, Terminal: sampleTerminal, Now: func() time.Time { return now }, Skew: DefaultSkew}
}
