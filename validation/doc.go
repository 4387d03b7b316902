// Package validation judges signed letters the way a relying party must:
// per signature VALID, INDETERMINATE or INVALID (ETSI EN 319 102-1
// §5.1.3), with the checks that led there, in the spirit of the simple
// report of the EU's DSS: the signature intact, the chain to the CAs
// given, the revocation status at the signing time and where it came
// from, the timestamp, and the baseline level reached.
//
// It is what `tekenctl verify` prints, and what a central system that
// receives results imports to judge them itself: VerifyResult checks the
// documents of a result, VerifyDocument one of them, VerifyPDF a signed
// PDF on its own and VerifyCMS a detached CMS signature. WriteVerdicts
// prints verdicts as text or as one JSON object a line.
//
// The overall status of a signature is the worst of its checks, and that
// of a file the worst of its signatures: nothing that is not established
// reads as VALID. Nothing is fetched unless Trust.Online is set.
package validation
