package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

// A full disk under the data directory is a full store: a job that
// arrives then is not acknowledged (the broker keeps it), /readyz and the
// retained status say "store: full", the log says it once however often
// the transport retries, and once there is room the job is stored.
func TestFullDiskHoldsJobsBack(t *testing.T) {
	dir := testenv.SmallFS(t, 16<<20)
	tm := tekentest.Start(t, nil, func(cfg *daemon.Config) { cfg.DataDir = filepath.Join(dir, "data") })
	ctx := context.Background()
	ready := func() (int, string) {
		res, err := http.Get(tm.MetricsURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{1 << 16, 1 << 12, 1} {
		for buf := make([]byte, chunk); ; {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	f.Close()

	// Larger than anything free in the fresh file: it needs new pages.
	now := time.Now().UTC().Truncate(time.Second)
	job := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: tm.ID, IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		Signer: api.Signatory{CertSHA256: strings.Repeat("ab", 32)}, Title: "Surat Besar", Number: "1", Sender: "Setda",
		Documents: []api.Document{api.NewDocument("d", "d.txt", "text/plain", bytes.Repeat([]byte("isi surat "), 100<<10))}}
	if err := tm.Central.Publish(ctx, job); err != nil {
		t.Fatal(err)
	}
	err = testenv.WaitFor(ctx, 30*time.Second, func() error {
		code, body := ready()
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "store: full: filesystem full") {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		if !bytes.Contains(tm.Wire.Bytes(), []byte(`"last_error":"store: full: filesystem full`)) {
			return errors.New("no retained status saying the store is full")
		}
		// Retried by the transport meanwhile, and refused each time.
		if bytes.Count(tm.Logs.Bytes(), []byte("mqtt message not handled; retrying")) < 3 {
			return errors.New("not retried three times yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case r := <-tm.Receipts:
			if r.JobID == job.JobID {
				t.Fatalf("receipt %+v for a job the store could not hold", r)
			}
			continue
		default:
		}
		break
	}
	if n := bytes.Count(tm.Logs.Bytes(), []byte(`msg="store full`)); n != 1 {
		t.Fatalf("\"store full\" logged %d times, want once:\n%s", n, tm.Logs.Bytes())
	}
	if n := bytes.Count(tm.Logs.Bytes(), []byte(`msg="commit failed"`)); n != 0 {
		t.Fatalf("\"commit failed\" logged %d times for a full disk", n)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	tm.AwaitReceipt(job.JobID, api.ReceiptStored)
	err = testenv.WaitFor(ctx, 30*time.Second, func() error {
		if _, body := ready(); strings.Contains(body, "store:") {
			return fmt.Errorf("/readyz still %q", body)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(tm.Logs.Bytes(), []byte(`msg="store has room again"`)); n != 1 {
		t.Fatalf("\"store has room again\" logged %d times, want once", n)
	}
}
