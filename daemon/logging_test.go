package daemon

import "testing"

func TestJournalField(t *testing.T) {
	for in, want := range map[string]string{
		"job":             "JOB",
		"envelope_sha256": "ENVELOPE_SHA256",
		"client-id":       "CLIENT_ID",
		"a.b":             "A_B",
		"_hidden":         "HIDDEN",
		"9lives":          "LIVES",
		"message":         "",
		"priority":        "",
		"ÜBER":            "BER",
		"":                "",
	} {
		if got := journalField(in); got != want {
			t.Errorf("journalField(%q) = %q, want %q", in, got, want)
		}
	}
	for _, lv := range []string{"debug", "info", "warn", "error", "INFO"} {
		if _, err := ParseLogLevel(lv); err != nil {
			t.Errorf("ParseLogLevel(%q): %v", lv, err)
		}
	}
	if _, err := ParseLogLevel("loud"); err == nil {
		t.Error("ParseLogLevel accepts loud")
	}
}
