package api

import "testing"

func TestTopicRoundTrip(t *testing.T) {
	for _, kind := range []Kind{KindJobs, KindControl, KindReceipts, KindResults, KindStatus, KindSync} {
		topic := Topic(DefaultRoot, "kendari-setda-01", kind)
		term, k, err := ParseTopic(DefaultRoot, topic)
		if err != nil || term != "kendari-setda-01" || k != kind {
			t.Errorf("ParseTopic(%q) = %q, %q, %v", topic, term, k, err)
		}
	}
}

func TestParseTopicRefuses(t *testing.T) {
	for _, topic := range []string{
		"teken/v1/t/kendari/jobs/extra",
		"teken/v2/t/kendari/jobs",
		"teken/v1/t/Kendari/jobs",
		"teken/v1/t/kendari/unknown",
		"teken/v1/t//jobs",
		"teken/v1/t/-x/jobs",
	} {
		if _, _, err := ParseTopic(DefaultRoot, topic); err == nil {
			t.Errorf("ParseTopic(%q) accepted", topic)
		}
	}
}

func TestValidRoot(t *testing.T) {
	good := []string{"teken/v1", "prov/sultra/teken/v1"}
	bad := []string{"", "/teken", "teken/", "teken/+/v1", "a//b", "te#ken"}
	for _, r := range good {
		if err := ValidRoot(r); err != nil {
			t.Errorf("ValidRoot(%q): %v", r, err)
		}
	}
	for _, r := range bad {
		if ValidRoot(r) == nil {
			t.Errorf("ValidRoot(%q) accepted", r)
		}
	}
}
