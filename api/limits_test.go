package api

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLimitsTable keeps the one table of limits in PROTOCOL.md equal to
// the numbers the code uses.
func TestLimitsTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	rows := []struct {
		what string
		n    int64
	}{
		{"document content per job", DefaultMaxContentBytes},
		{"largest Job envelope", int64(MaxJobEnvelopeFor(DefaultMaxContentBytes))},
		{"documents per job", MaxDocuments},
		{"display fields per job", MaxFields},
		{"Cancel, ResultAck, ResultAcks, SyncRequest envelope", int64(envelopeLimit(MaxMessageBytes))},
		{"job ids per ResultAcks", MaxResultAcks},
		{"Receipt, Status, Sync", MaxMessageBytes},
		{"job ids in each Sync list", MaxSyncIDs},
		{"one cms or raw signature", MaxSignatureLen},
		{"growth of a PDF by its signature", MaxPAdESGrowth},
		{"one signed PDF", MaxSignedPDFLen},
		{"signer certificate", MaxCertLen},
		{"largest Result", MaxResultBytes},
		{"Result of one 10 MiB PDF", MaxResultFor(DefaultMaxContentBytes, 1, 0)},
		{"Result of the largest default job", MaxResultFor(DefaultMaxContentBytes, MaxDocuments, 0)},
		{"**broker message size**", max(int64(MaxJobEnvelopeFor(DefaultMaxContentBytes)), MaxResultBytes)},
	}
	for _, r := range rows {
		prefix := fmt.Sprintf("| %s | %d", r.what, r.n)
		if r.what == "**broker message size**" {
			prefix = fmt.Sprintf("| %s | **%d**", r.what, r.n)
		}
		if !strings.Contains(doc, prefix) {
			t.Errorf("PROTOCOL.md's limits table lacks %q", prefix)
		}
	}
	if want := fmt.Sprintf("plus %d |", resultOverhead); !strings.Contains(doc, want) {
		t.Errorf("PROTOCOL.md does not give the Result overhead as %q", want)
	}
	if MaxResultFor(DefaultMaxContentBytes, MaxDocuments, 0) > MaxResultBytes {
		t.Error("the largest job at the default content limit has a Result over MaxResultBytes")
	}
}
