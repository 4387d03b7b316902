package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/transport"
)

// DefaultResultsClientID is the stable client id under which the broker
// keeps the results session (and the results that arrive while tekenctl is
// not running).
const DefaultResultsClientID = "tekenctl-results"

// ResultsOptions configure Results.
type ResultsOptions struct {
	Settings
	ClientID string
	// Follow keeps printing until ctx ends; otherwise Results returns
	// Timeout after it connected.
	Follow  bool
	Timeout time.Duration
	// OutDir, when set, receives each signature and the result JSON.
	OutDir string
	// Overwrite lets a signature file replace one of the same name and
	// other bytes in OutDir; without it such a result is not taken.
	Overwrite bool
	JSON      bool
	// Connected, when set, is called once the session is up.
	Connected func()
	// Resync names terminals to send a SyncRequest once connected: each
	// publishes again every result without a ResultAck, so a central
	// side that lost them (a lost session, a restore) takes them here.
	Resync []string
	// Log, when set, is told of each SyncRequest sent.
	Log io.Writer
}

// Results prints the results that arrive, writes them to OutDir and lets
// the dispatcher acknowledge each only after it was printed and written. It
// returns how many new results it took.
func Results(ctx context.Context, o ResultsOptions, out io.Writer) (int, error) {
	signer, err := LoadDispatcherKey(o.DispatcherKey)
	if err != nil {
		return 0, fmt.Errorf("results are acknowledged with the dispatcher key: %w", err)
	}
	if o.ClientID == "" {
		o.ClientID = DefaultResultsClientID
	}
	conn, err := o.Connection(o.ClientID)
	if err != nil {
		return 0, err
	}
	if o.OutDir != "" {
		if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
			return 0, fmt.Errorf("results: %w", err)
		}
	}
	p := &ResultPrinter{W: out, JSON: o.JSON, OutDir: o.OutDir, Overwrite: o.Overwrite, Log: o.Log}
	d, err := transport.OpenDispatcher(transport.DispatcherConfig{
		Connection: conn, Root: o.TopicRoot(), Signer: signer,
		OnResult: p.Take,
	})
	if err != nil {
		return 0, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = d.Close(cctx)
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = d.WaitConnected(wctx)
	cancel()
	if err != nil {
		return 0, err
	}
	if o.Connected != nil {
		o.Connected()
	}
	for _, term := range o.Resync {
		id, err := d.RequestSync(ctx, term)
		if err != nil {
			return p.Count(), fmt.Errorf("resync: %w", err)
		}
		if o.Log != nil {
			fmt.Fprintf(o.Log, "sync requested from %s (request %s)\n", term, id)
		}
	}
	if o.Follow {
		<-ctx.Done()
		return p.Count(), nil
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	t := time.NewTimer(o.Timeout)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return p.Count(), nil
}

// ResultPrinter prints results as a table or JSON Lines and writes them to
// a directory; it drops a result already written there.
type ResultPrinter struct {
	W         io.Writer
	JSON      bool
	OutDir    string
	Overwrite bool // see ResultsOptions.Overwrite
	// Log, when set, is told once per result why it could not be
	// written; the result is then not acknowledged, and comes again.
	Log io.Writer

	mu      sync.Mutex
	n       int
	started bool
	told    map[string]bool // jobs whose write failure Log was told
}

// Count returns how many new results were taken.
func (p *ResultPrinter) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Take handles one result; an error leaves it unacknowledged, so the
// terminal sends it again.
func (p *ResultPrinter) Take(_ context.Context, r *api.Result) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.OutDir != "" {
		jsonPath := filepath.Join(p.OutDir, ResultFileName(r))
		if _, err := os.Stat(jsonPath); err == nil {
			return nil // taken by an earlier run whose ack was lost
		}
		if err := WriteResult(p.OutDir, r, p.Overwrite); err != nil {
			p.tell(r.JobID, err)
			return err
		}
	}
	if p.JSON {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(p.W, "%s\n", line); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(p.W, 0, 4, 2, ' ', 0)
		if !p.started {
			fmt.Fprintln(tw, "COMPLETED\tTERMINAL\tJOB\tOUTCOME\tDOCUMENTS\tREASON")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", r.CompletedAt.Local().Format("2006-01-02 15:04:05"),
			r.Terminal, r.JobID, r.Outcome, len(r.Documents), reasonText(r.Reason, r.Detail))
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	p.started = true
	p.n++
	return nil
}

// tell reports a result that could not be written, once: the transport
// retries it with backoff, and an operator must hear why only once.
func (p *ResultPrinter) tell(jobID string, err error) {
	if p.Log == nil || p.told[jobID] {
		return
	}
	if p.told == nil {
		p.told = map[string]bool{}
	}
	p.told[jobID] = true
	hint := ""
	if errors.Is(err, ErrExists) {
		hint = " (move it away, or run with --overwrite)"
	}
	fmt.Fprintf(p.Log, "result %s not taken: %v%s; it stays unacknowledged and comes again\n", jobID, err, hint)
}

func reasonText(reason api.ReasonCode, detail string) string {
	s := string(reason)
	if detail != "" {
		s = strings.TrimSpace(s + " " + detail)
	}
	if s == "" {
		return "-"
	}
	return s
}

// ResultFileName is the name of a result's JSON file: the job id.
func ResultFileName(r *api.Result) string { return r.JobID + ".json" }

// SignatureFileName is the name of one document's signature file: job id
// and document id, .p7s for CMS, .pdf for the signed PDF of pades (unless
// the document id already ends so: tekenctl dispatch names documents after
// their files) and .sig for a raw signature.
func SignatureFileName(jobID string, d api.SignedDocument) string {
	ext := ".sig"
	switch d.Format {
	case api.FormatCMS:
		ext = ".p7s"
	case api.FormatPAdES:
		ext = ".pdf"
		if strings.HasSuffix(strings.ToLower(d.ID), ".pdf") {
			ext = ""
		}
	}
	return filepath.Base(jobID + "-" + d.ID + ext)
}

// ErrExists says a file of the name a result is written under is in the
// directory with other bytes, and was not replaced.
var ErrExists = errors.New("a file of that name with other contents exists")

// WriteResult writes a result's signatures and then its JSON (last, so a
// JSON file means the whole result is on disk). A file already there with
// the same bytes (from a run stopped before the JSON) is kept; one with
// other bytes is replaced only with overwrite, and is otherwise an error
// matching ErrExists.
func WriteResult(dir string, r *api.Result, overwrite bool) error {
	if err := api.ValidJobID(r.JobID); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	for _, d := range r.Documents {
		if err := writeFileSync(filepath.Join(dir, SignatureFileName(r.JobID, d)), d.Signature, overwrite); err != nil {
			return err
		}
	}
	raw, err := api.Encode(r)
	if err != nil {
		return fmt.Errorf("write result %s: %w", r.JobID, err)
	}
	return writeFileSync(filepath.Join(dir, ResultFileName(r)), raw, overwrite)
}

// writeFileSync writes through a temporary file, so a crash leaves the old
// file or the whole new one: renamed over path with overwrite, else linked
// to it, which fails rather than replace a file that appeared meanwhile.
func writeFileSync(path string, data []byte, overwrite bool) error {
	if old, err := os.ReadFile(path); err == nil {
		if bytes.Equal(old, data) {
			return nil
		}
		if !overwrite {
			return fmt.Errorf("write %s: %w", path, ErrExists)
		}
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = place(tmp, path, overwrite)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// place moves the written tmp to path.
func place(tmp, path string, overwrite bool) error {
	if overwrite {
		return os.Rename(tmp, path)
	}
	err := os.Link(tmp, path)
	if errors.Is(err, fs.ErrExist) {
		return ErrExists
	}
	if err != nil {
		// A file system without hard links: rename, having looked above.
		return os.Rename(tmp, path)
	}
	return os.Remove(tmp)
}
