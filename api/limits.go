package api

// MaxPAdESGrowth is how much a terminal lets a PDF grow when it signs it:
// the incremental update with the signature dictionary, its /Contents
// reserve (hex, so twice the CMS: certificates, attributes, room for a
// timestamp token), the visible block's appearance and the new
// cross-reference section. A signed PDF that would grow more is not sent.
const MaxPAdESGrowth = 256 << 10

// resultOverhead bounds what a Result carries beside its documents' bytes:
// the signer certificate (MaxCertLen, in base64), the fields, and per
// document its id, hash, format, level, timestamp error and time.
const resultOverhead = 64<<10 + MaxDocuments*(2<<10)

// MaxResultFor returns the largest Result a terminal can publish for a job
// with pades documents of padesBytes between them and others cms or raw
// documents: in base64, each signed PDF (its bytes plus MaxPAdESGrowth) and
// each other signature (at most MaxSignatureLen), plus resultOverhead. A
// terminal refuses a job whose Result could be larger than MaxResultBytes
// (the most a Result decoder reads) as too_large, so no result it signs is
// ever too large to deliver.
func MaxResultFor(padesBytes int64, pades, others int) int64 {
	signed := padesBytes + int64(pades)*MaxPAdESGrowth + int64(others)*MaxSignatureLen
	return base64Len(signed) + resultOverhead
}

// MaxResult returns MaxResultFor the job's documents.
func (j *Job) MaxResult() int64 {
	var padesBytes int64
	pades := 0
	for i := range j.Documents {
		if j.Documents[i].SignatureFormat() == FormatPAdES {
			padesBytes += int64(len(j.Documents[i].Content))
			pades++
		}
	}
	return MaxResultFor(padesBytes, pades, len(j.Documents)-pades)
}

// base64Len is the length of n bytes in padded standard base64.
func base64Len(n int64) int64 { return (n + 2) / 3 * 4 }

// MaxJobEnvelopeFor returns the largest job envelope a terminal with the
// content limit contentBytes reads: the documents' bytes in base64 in the
// JSON, and the JSON again in base64url in the JWS, plus room for the rest
// of the job.
func MaxJobEnvelopeFor(contentBytes int64) int {
	return envelopeLimit(int(contentBytes*4/3) + 256<<10)
}
