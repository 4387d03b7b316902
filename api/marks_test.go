package api

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// The Job of v 2: a verifier takes it only with Marks, refusing it as
// unsupported_version otherwise, before any of its fields; with Marks a v 1
// job still may not use a field of v 2.
func TestJobVersion2(t *testing.T) {
	s := loadSigner(t, "ed25519")
	v2 := goldenJobV2(sampleJob(), false)
	env, err := s.SignJob(v2)
	if err != nil {
		t.Fatal(err)
	}
	v := testVerifier(t)
	if _, _, err := v.VerifyJob(env); Reason(err) != ReasonUnsupportedVersion {
		t.Fatalf("without marks: %v, want unsupported_version", err)
	}
	// A v 2 job broken in a v 2 field is still unsupported_version there.
	broken := goldenJobV2(sampleJob(), false)
	broken.Documents[0].Visible.Anchor.Text = ""
	payload, err := json.Marshal(broken)
	if err != nil {
		t.Fatal(err)
	}
	raw := signRaw(t, loadPrivate(t, "p256"), jose.ES256, kidOf(t, "p256"), TypeJob, payload)
	if _, _, err := v.VerifyJob(raw); Reason(err) != ReasonUnsupportedVersion {
		t.Fatalf("a broken v 2 job without marks: %v, want unsupported_version", err)
	}
	if !slices.Equal(v.JobVersions(), []int{1}) {
		t.Fatalf("versions %v", v.JobVersions())
	}
	v.Marks = true
	got, _, err := v.VerifyJob(env)
	if err != nil || got.V != VersionMarks || got.Documents[0].Visible.Anchor.Text != "${ttd_sekda}" || !got.Documents[0].Certify {
		t.Fatalf("with marks: %+v, %v", got, err)
	}
	if !slices.Equal(v.JobVersions(), []int{1, 2}) {
		t.Fatalf("versions %v", v.JobVersions())
	}
	v1 := goldenJobV2(sampleJob(), true)
	v1.V = Version
	if _, err := s.SignJob(v1); Reason(err) != ReasonMalformed {
		t.Fatalf("a v 1 job with a paraf: %v, want malformed", err)
	}
	for name, edit := range map[string]func(*Job){
		"paraf certifies":      func(j *Job) { j.Documents[0].Visible.Mark, j.Documents[0].Certify = MarkParaf, true },
		"initials on a ttd":    func(j *Job) { j.Documents[0].Visible.Initials = "LOB" },
		"rect and anchor":      func(j *Job) { j.Documents[0].Visible.Rect = []float64{10, 10, 100, 60} },
		"certify a cms":        func(j *Job) { j.Documents[0].Format, j.Documents[0].Visible = FormatCMS, nil },
		"unknown mark":         func(j *Job) { j.Documents[0].Visible.Mark = "stempel" },
		"offset of one number": func(j *Job) { j.Documents[0].Visible.Anchor.Offset = []float64{1} },
	} {
		j := goldenJobV2(sampleJob(), false)
		edit(j)
		if err := j.Validate(); Reason(err) != ReasonMalformed {
			t.Errorf("%s: %v, want malformed", name, err)
		}
	}
	st := Status{V: Version, Terminal: sampleTerminal, State: StateOnline, Version: "1", Since: t0}
	if !st.TakesJobVersion(1) || st.TakesJobVersion(2) {
		t.Error("a status without versions takes v 1 only")
	}
	st.Versions = []int{1, 2}
	if !st.TakesJobVersion(2) {
		t.Error("versions [1, 2] take v 2")
	}
}
