package validation

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/signature/pades"
)

// WriteVerdicts prints verdicts as `tekenctl verify` does: per file its
// format and verdict, then per signature its verdict, signer, times,
// level, what it covers and each check on a line of its own; or, with
// asJSON, one Verdict as JSON a line. Names and reasons come from the
// files checked, so control and format characters in them are printed
// escaped.
func WriteVerdicts(w io.Writer, vs []Verdict, asJSON bool) error {
	for _, v := range vs {
		v = floored(v)
		var err error
		if asJSON {
			err = writeVerdictJSON(w, v)
		} else {
			err = writeVerdict(w, v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// floored lowers each status to the worst below it, so that a verdict
// put together by hand, or changed after it was settled, still never
// prints VALID over a check that is not.
func floored(v Verdict) Verdict {
	sigs := make([]SignatureVerdict, len(v.Signatures))
	for i, s := range v.Signatures {
		for _, c := range s.Checks {
			s.Status = worse(s.Status, c.Status)
		}
		v.Status = worse(v.Status, s.Status)
		sigs[i] = s
	}
	if v.Signatures != nil {
		v.Signatures = sigs
	}
	return v
}

func writeVerdictJSON(w io.Writer, v Verdict) error {
	line, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("verdict: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", line)
	return err
}

func writeVerdict(w io.Writer, v Verdict) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s", printable(v.Document), v.Format)
	if v.DocumentID != "" {
		fmt.Fprintf(&b, ", document %s", printable(v.DocumentID))
	}
	b.WriteString(")\n")
	// A lone CMS or raw signature is the file's verdict; the signatures
	// of a PDF are listed one by one.
	many := len(v.Signatures) > 1 || v.Format == api.FormatPAdES
	reason := v.Reason
	if !many && reason == "" && len(v.Signatures) == 1 {
		reason = v.Signatures[0].Reason
	}
	fmt.Fprintf(&b, "  verdict: %s\n", verdictText(v.Status, reason))
	for i, s := range v.Signatures {
		indent := "  "
		if many {
			head := fmt.Sprintf("  signature %d", i+1)
			if s.Kind != string(pades.KindSignature) {
				head += " (" + printable(s.Kind) + ")"
			}
			if s.Field != "" {
				head += ", field " + printable(s.Field)
			}
			fmt.Fprintf(&b, "%s: %s\n", head, verdictText(s.Status, s.Reason))
			indent = "    "
		}
		writeSignature(&b, indent, s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeSignature(b *strings.Builder, indent string, s SignatureVerdict) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(b, "%s%-10s %s\n", indent, label+":", fmt.Sprintf(format, args...))
	}
	if s.Signer != "" {
		line("signer", "%s (NIP %s)", printable(s.Signer), orDash(printable(s.NIP)))
	}
	if s.SigningTime != nil {
		line("signed", "%s", s.SigningTime.Local().Format(time.RFC3339))
	}
	if s.TimestampTime != nil {
		line("timestamp", "%s", s.TimestampTime.Local().Format(time.RFC3339))
	}
	if s.Level != "" {
		line("level", "%s", s.Level)
	}
	if len(s.ByteRange) == 4 && s.CoversWholeFile != nil {
		end := s.ByteRange[2] + s.ByteRange[3]
		if *s.CoversWholeFile {
			line("covers", "the whole file (%d bytes)", end)
		} else {
			line("covers", "bytes 0 to %d only: an earlier revision", end)
		}
	}
	if len(s.Checks) == 0 {
		return
	}
	fmt.Fprintf(b, "%schecks:\n", indent)
	for _, c := range s.Checks {
		what := verdictText(c.Status, c.Detail)
		if c.Name == CheckLevel && c.Status == StatusValid {
			what = printable(c.Detail) // the level reached is no verdict
		}
		fmt.Fprintf(b, "%s  %-11s %s\n", indent, printable(c.Name)+":", what)
	}
}

// verdictText is a status and why; the detail follows VALID after a
// space (what was found), any other status after a colon (what is wrong).
func verdictText(s Status, reason string) string {
	switch {
	case reason == "":
		return string(s)
	case s == StatusValid:
		return string(s) + " " + printable(reason)
	}
	return string(s) + ": " + printable(reason)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printable escapes control and format characters (a terminal's escape
// sequences, bidi overrides that make a name read as another).
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
