package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/route"
	"github.com/tekenid/teken/transport"
)

type jsonSigner struct{}

func (jsonSigner) SignJob(j *api.Job) ([]byte, error) { return json.Marshal(j) }

// keptJobs is a publisher that keeps the jobs, by id.
type keptJobs struct {
	mu   sync.Mutex
	jobs map[string]*api.Job
}

func (k *keptJobs) PublishEnvelope(_ context.Context, p transport.PendingJob) error {
	var j api.Job
	if err := json.Unmarshal(p.Envelope, &j); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.jobs[j.JobID] = &j
	return nil
}

func (k *keptJobs) job(id string) *api.Job {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.jobs[id]
}

// routeLedger writes a ledger with a route two steps in (one signed, one
// sent), and a route stopped by a rejection.
func routeLedger(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "routes.ledger")
	r, err := route.Open(route.Config{Path: path, Signer: jsonSigner{}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	pub := &keptJobs{jobs: map[string]*api.Job{}}
	ctx := t.Context()
	if err := r.Resume(ctx, pub); err != nil {
		t.Fatal(err)
	}
	letter := func(id string) route.Route {
		rt := route.Route{ID: id, Title: "Undangan rapat", Number: "005/12/2026", Sender: "Sekretariat Daerah", PDF: []byte("%PDF-1.7 " + id)}
		for i, kind := range []string{route.KindParaf, route.KindParaf, route.KindTTD} {
			rt.Steps = append(rt.Steps, route.Step{Kind: kind, Terminal: fmt.Sprintf("t%d", i%2+1),
				Signer: api.Signatory{CertSHA256: fmt.Sprintf("%064x", i+1), Name: fmt.Sprintf("Pejabat %d", i+1), NIP: fmt.Sprintf("19800101200%d", i)}})
		}
		return rt
	}
	current := func(id string) *api.Job {
		s, _ := r.Get(id)
		return pub.job(s.Steps[s.Current].JobID)
	}
	for _, id := range []string{"nota-1", "nota-2"} {
		if err := r.Start(ctx, letter(id)); err != nil {
			t.Fatal(err)
		}
		j := current(id)
		d := j.Documents[0]
		res := &api.Result{V: 1, JobID: j.JobID, Terminal: j.Terminal, Outcome: api.OutcomeSigned,
			Documents: []api.SignedDocument{{ID: d.ID, Format: api.FormatPAdES, Signature: append(bytes.Clone(d.Content), " |paraf 1"...)}}}
		if err := r.OnResult(ctx, res); err != nil {
			t.Fatal(err)
		}
	}
	// The next steps' jobs go out in the background.
	if err := testenv.WaitFor(ctx, 10*time.Second, func() error {
		for _, id := range []string{"nota-1", "nota-2"} {
			if s, _ := r.Get(id); s.Steps[1].State != route.StepSent || current(id) == nil {
				return fmt.Errorf("step 2 of %s: %s", id, s.Steps[1].State)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	j := current("nota-2")
	if err := r.OnResult(ctx, &api.Result{V: 1, JobID: j.JobID, Terminal: j.Terminal, Outcome: api.OutcomeRejected,
		Reason: api.ReasonRejectedBySigner, Detail: "nomor surat salah"}); err != nil {
		t.Fatal(err)
	}
	return path
}

// runRoute runs ShowRoutes as tekenctl route does for --ledger FILE,
// --json, --pdf FILE and a ROUTE (cmd/tekenctl parses the flags): exit 0,
// or 1 and the error.
func runRoute(args ...string) (code int, stdout, stderr string) {
	var ledger, id string
	var o RouteOutput
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--ledger":
			i++
			ledger = args[i]
		case "--json":
			o.JSON = true
		case "--pdf":
			i++
			o.PDF = args[i]
		default:
			id = args[i]
		}
	}
	var out bytes.Buffer
	if err := ShowRoutes(ledger, id, o, &out, time.Now()); err != nil {
		return 1, out.String(), err.Error()
	}
	return 0, out.String(), ""
}

func TestRouteCommand(t *testing.T) {
	path := routeLedger(t)

	code, out, errs := runRoute("--ledger", path)
	if code != 0 || errs != "" {
		t.Fatalf("list: %d %s", code, errs)
	}
	// Columns are compared with their padding collapsed.
	flat := func(s string) string {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			lines[i] = strings.Join(strings.Fields(l), " ")
		}
		return strings.Join(lines, "\n")
	}
	for _, want := range []string{"ROUTE", "nota-1 running 2/3 paraf sent Pejabat 2 (198001012001) @ t2", "nota-2 stopped 2/3 paraf rejected"} {
		if !strings.Contains(flat(out), want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = runRoute("--ledger", path, "nota-2")
	if code != 0 {
		t.Fatalf("show: %d", code)
	}
	for _, want := range []string{"stopped at step 2: rejected", "005/12/2026, Undangan rapat, from Sekretariat Daerah",
		"1 paraf Pejabat 1 (198001012000) t1 signed 20", "t2 rejected 20", "rejected_by_signer nomor surat salah", "3 ttd Pejabat 3 (198001012002) t1 pending - - -"} {
		if !strings.Contains(flat(out), want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}

	pdf := filepath.Join(t.TempDir(), "latest.pdf")
	code, out, _ = runRoute("--ledger", path, "--json", "--pdf", pdf, "nota-1")
	if code != 0 {
		t.Fatalf("json: %d", code)
	}
	var v RouteView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.ID != "nota-1" || v.State != "running" || v.Current != 1 || len(v.Steps) != 3 ||
		v.Steps[0].State != "signed" || v.Steps[0].SignedAt.IsZero() || v.Steps[1].State != "sent" || v.Steps[2].State != "pending" {
		t.Fatalf("json view: %+v", v)
	}
	if strings.Contains(out, "envelope") || strings.Contains(out, "JVBER") {
		t.Error("the JSON view carries PDF or envelope bytes")
	}
	if got, _ := os.ReadFile(pdf); string(got) != "%PDF-1.7 nota-1 |paraf 1" || v.PDFBytes != len(got) {
		t.Errorf("--pdf wrote %q", got)
	}

	code, out, _ = runRoute("--ledger", path, "--json")
	var all []RouteView
	if err := json.Unmarshal([]byte(out), &all); code != 0 || err != nil || len(all) != 2 {
		t.Fatalf("json list: %d %v %d", code, err, len(all))
	}
}

func TestRouteCommandErrors(t *testing.T) {
	path := routeLedger(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--ledger", path, "nota-9"}, 1, `route "nota-9": no route of that id`},
		{[]string{"--ledger", filepath.Join(t.TempDir(), "none")}, 1, "no such file"},
	} {
		code, out, errs := runRoute(tc.args...)
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%q: exit %d, want %d; output %q%q lacks %q", tc.args, code, tc.code, out, errs, tc.want)
		}
	}
	// A ledger corrupted in the middle names its line.
	raw, _ := os.ReadFile(path)
	lines := bytes.SplitAfter(raw, []byte("\n"))
	lines[1] = []byte("not json\n")
	_ = os.WriteFile(path, bytes.Join(lines, nil), 0o600)
	if code, _, errs := runRoute("--ledger", path); code != 1 || !strings.Contains(errs, "ledger line 2") {
		t.Errorf("corrupt ledger: %d %q", code, errs)
	}
}
