package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/transport"
)

// OpenFleet watches every terminal's retained status under the settings'
// topic root, and each of terminals by name, with a fresh client id.
func OpenFleet(ctx context.Context, s Settings, terminals ...string) (*transport.Fleet, error) {
	conn, err := s.Connection(randomClientID("tekenctl-fleet"))
	if err != nil {
		return nil, err
	}
	return transport.OpenFleet(ctx, conn, s.TopicRoot(), terminals...)
}

// WriteFleetTable prints one line per terminal.
func WriteFleetTable(w io.Writer, fleet []api.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TERMINAL\tSTATE\tSINCE\tVERSION\tTOKEN\tJOBS\tUNDELIVERED\tLAST ERROR")
	for _, s := range fleet {
		token := "-"
		if s.TokenPresent {
			token = "yes"
		}
		lastErr := s.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.Terminal, s.State, Since(s.Since, now),
			s.Version, token, s.JobsWaiting, s.ResultsUndelivered, lastErr)
	}
	if len(fleet) == 0 {
		fmt.Fprintln(tw, "(no terminal has published a status)")
	}
	return tw.Flush()
}

// WriteFleetJSON prints the fleet as one JSON array.
func WriteFleetJSON(w io.Writer, fleet []api.Status) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(fleet)
}

// Since says how long ago t was, briefly, with the time itself.
func Since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	var ago string
	switch {
	case d < 0:
		ago = "in the future"
	case d < time.Minute:
		ago = fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		ago = fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		ago = fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	default:
		ago = fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
	return t.Local().Format("2006-01-02 15:04") + " (" + ago + ")"
}
