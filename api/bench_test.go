package api

import (
	"crypto/rand"
	"testing"
)

// BenchmarkVerifyJob10MiB measures a job at the default content limit: the
// whole path from envelope bytes to a verified job with its hashes checked.
func BenchmarkVerifyJob10MiB(b *testing.B) {
	content := make([]byte, DefaultMaxContentBytes-1024)
	if _, err := rand.Read(content); err != nil {
		b.Fatal(err)
	}
	j := sampleJob()
	j.Documents = []Document{NewDocument("surat", "surat.pdf", "application/pdf", content)}
	env, err := loadSigner(b, "p256").SignJob(j)
	if err != nil {
		b.Fatal(err)
	}
	v := testVerifier(b)
	b.SetBytes(int64(len(env)))
	b.ReportMetric(float64(len(env)), "envelope-bytes")
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := v.VerifyJob(env); err != nil {
			b.Fatal(err)
		}
	}
}
