package doctor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/admin"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/queue"
)

// findings collects what a doctor reports.
type findings []Finding

func (fs *findings) add(f Finding) { *fs = append(*fs, f) }

// testCheckup is a checkup with cfg as its configuration, reporting into fs.
func testCheckup(t *testing.T, cfg daemon.Config, fs *findings, adjust ...func(*Options)) *checkup {
	t.Helper()
	o := Options{ServiceUser: currentUser(t), Timeout: 5 * time.Second, Report: fs.add,
		AdminSocket: filepath.Join(t.TempDir(), "none.sock")}
	for _, f := range adjust {
		f(&o)
	}
	d := newCheckup(o)
	d.cfg = cfg
	d.check = &daemon.ConfigCheck{Config: cfg, Parsed: true}
	return d
}

func currentUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// one returns the only finding, failing the test unless there is exactly
// one with the health wanted and text containing want.
func (fs findings) one(t *testing.T, h Health, want string) Finding {
	t.Helper()
	if len(fs) != 1 || fs[0].Health != h || !strings.Contains(fs[0].String(), want) {
		t.Fatalf("findings %q, want one %s containing %q", fs.lines(), h, want)
	}
	return fs[0]
}

func (fs findings) lines() []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}

func TestFindingString(t *testing.T) {
	for _, tc := range []struct {
		f    Finding
		want string
	}{
		{Finding{HealthOK, "pcscd", "answers", "ignored"}, "ok    pcscd: answers"},
		{Finding{HealthWarn, "token", "none in any reader", "tap one"}, "warn  token: none in any reader — tap one"},
		{Finding{HealthFail, "broker ssl://b:8883", "refused:\n  twice", "fix\nit"}, "fail  broker ssl://b:8883: refused:; twice — fix; it"},
	} {
		d := newCheckup(Options{})
		var fs findings
		d.o.Report = fs.add
		d.report(tc.f.Health, tc.f.What, tc.f.Detail, tc.f.Fix)
		if got := fs[0].String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
		if d.failed != (tc.f.Health == HealthFail) {
			t.Errorf("%s: failed = %v", tc.f.Health, d.failed)
		}
	}
}

// requireRoot skips (fails in CI) a test that changes file owners.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "changing file owners needs root")
	}
}

func TestFiles(t *testing.T) {
	requireRoot(t)
	// Not under t.TempDir, whose parent only root may enter.
	dir, err := os.MkdirTemp("", "teken-doctor-files-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		testenv.Unavailable(t, "no user nobody: %v", err)
	}
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	closedDir := filepath.Join(dir, "closed")
	if err := os.Mkdir(closedDir, 0o700); err != nil {
		t.Fatal(err)
	}
	inClosed := filepath.Join(closedDir, "ca.pem")
	if err := os.WriteFile(inClosed, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		adjust func(*daemon.Config)
		health Health
		want   string
	}{
		{"all readable, secrets closed", func(c *daemon.Config) {
			c.Broker.CAFile, c.Broker.KeyFile = write("ca.pem", 0o644), write("key.pem", 0o600)
		}, HealthOK, "ok    files: 3 files the configuration names: user root reads them"},
		{"a secret every user reads", func(c *daemon.Config) { c.Broker.PasswordFile = write("password", 0o644) },
			HealthWarn, "files broker.password_file: " + dir + "/password: a secret every user may read (0644 root:root) — sudo chown root:root"},
		{"anyone may change it", func(c *daemon.Config) { c.Dispatcher.KeyFiles = []string{write("dispatcher.pub", 0o666)} },
			HealthFail, "files dispatcher.key_files: " + dir + "/dispatcher.pub: anyone may change it (0666 root:root) — sudo chmod o-w"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := daemon.DefaultConfig()
			tc.adjust(&cfg)
			var fs findings
			d := testCheckup(t, cfg, &fs, func(o *Options) { o.ConfigPath = write("tekend.toml", 0o640) })
			d.files()
			fs.one(t, tc.health, tc.want)
			if d.failed != (tc.health == HealthFail) {
				t.Errorf("failed = %v", d.failed)
			}
		})
	}
	t.Run("service user cannot read", func(t *testing.T) {
		cfg := daemon.DefaultConfig()
		cfg.Broker.KeyFile = write("root-only.pem", 0o600)
		cfg.Signing.SignerCAFiles = []string{inClosed}
		var fs findings
		d := testCheckup(t, cfg, &fs, func(o *Options) {
			o.ConfigPath, o.ServiceUser = write("tekend.toml", 0o644), nobody.Username
		})
		d.files()
		gid, _ := strconv.ParseUint(nobody.Gid, 10, 32)
		nobodyGroup := groupName(uint32(gid))
		got := fs.lines()
		want := []string{
			"fail  files signing.signer_ca_files: " + inClosed + ": user nobody cannot enter " + closedDir + " (0700 root:root) — sudo chmod a+x " + closedDir,
			"fail  files broker.key_file: " + dir + "/root-only.pem: user nobody cannot read it (0600 root:root) — sudo chgrp " + nobodyGroup + " ",
		}
		if len(got) != len(want) {
			t.Fatalf("findings %q, want %d", got, len(want))
		}
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Errorf("finding %d = %q, want %q…", i, got[i], want[i])
			}
		}
	})
	t.Run("no such user", func(t *testing.T) {
		var fs findings
		d := testCheckup(t, daemon.DefaultConfig(), &fs, func(o *Options) { o.ServiceUser = "teken-nobody-at-all" })
		d.files()
		fs.one(t, HealthFail, "service user teken-nobody-at-all")
	})
}

func TestDataDir(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name            string
		dirMode, dbMode os.FileMode // 0: none
		user            string
		health          Health
		want            string
	}{
		{"as packaged", 0o700, 0o600, "root", HealthOK, "0700 root:root"},
		{"no store yet", 0o700, 0, "root", HealthOK, "0700 root:root"},
		{"open to others", 0o755, 0o600, "root", HealthFail, "has mode 0755, want 0700 (the letters and the audit log are for tekend alone) — sudo chmod 0700 "},
		{"store open to others", 0o700, 0o644, "root", HealthFail, "tekend.db has mode 0644, want 0600"},
		{"another owner", 0o700, 0o600, "nobody", HealthFail, "is 0700 root:root, want owner nobody:"},
		{"missing", 0, 0, "root", HealthWarn, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := daemon.DefaultConfig()
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			if tc.dirMode != 0 {
				if err := os.Mkdir(cfg.DataDir, tc.dirMode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(cfg.DataDir, tc.dirMode); err != nil {
					t.Fatal(err)
				}
			}
			if tc.dbMode != 0 {
				p := daemon.StorePath(cfg.DataDir)
				if err := os.WriteFile(p, nil, tc.dbMode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, tc.dbMode); err != nil {
					t.Fatal(err)
				}
			}
			var fs findings
			d := testCheckup(t, cfg, &fs, func(o *Options) { o.ServiceUser = tc.user })
			d.dataDir()
			fs.one(t, tc.health, tc.want)
		})
	}
}

func TestDisk(t *testing.T) {
	cfg := daemon.DefaultConfig()
	cfg.DataDir = filepath.Join(testenv.SmallFS(t, 80<<20), "data")
	if err := os.Mkdir(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg.Store.MaxSizeBytes = 16 << 20
	var fs findings
	testCheckup(t, cfg, &fs).disk()
	fs.one(t, HealthOK, "free; the store is 0 B of at most 16.0 MiB")

	cfg.Store.MaxSizeBytes = 1 << 30
	fs = nil
	testCheckup(t, cfg, &fs).disk()
	fs.one(t, HealthWarn, "the disk fills before the store reaches its limit")

	testenv.FillFS(t, cfg.DataDir)
	fs = nil
	testCheckup(t, cfg, &fs).disk()
	fs.one(t, HealthFail, "0 B free")
}

func TestClock(t *testing.T) {
	tsa := testenv.StartTSA(t, testenv.TSAConfig{})
	down := fmt.Sprintf("http://127.0.0.1:%d/tsa", testenv.FreePort(t))
	for _, tc := range []struct {
		name   string
		url    string
		offset time.Duration
		health Health
		want   string
	}{
		{"in time", tsa.URL, 0, HealthOK, "the TSA's (HTTP Date of 127.0.0.1:"},
		{"half a minute ahead", tsa.URL, 30 * time.Second, HealthWarn, "ahead of the TSA's"},
		{"ten minutes behind", tsa.URL, -10 * time.Minute, HealthFail, "behind the TSA's (HTTP Date of 127.0.0.1:"},
		{"ten minutes ahead", tsa.URL, 10 * time.Minute, HealthFail, "more than dispatcher.clock_skew (2m0s): jobs are refused"},
		{"TSA down", down, 0, HealthWarn, "not checked: the TSA does not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := daemon.DefaultConfig()
			cfg.Signing.TSAURL = tc.url
			var fs findings
			testCheckup(t, cfg, &fs, func(o *Options) {
				o.Now = func() time.Time { return time.Now().Add(tc.offset) }
			}).clock(context.Background())
			fs.one(t, tc.health, tc.want)
		})
	}
	t.Run("no TSA", func(t *testing.T) {
		var fs findings
		testCheckup(t, daemon.DefaultConfig(), &fs).clock(context.Background())
		if len(fs) != 1 || fs[0].Health == HealthFail || !strings.Contains(fs[0].Detail, "as the kernel reports") {
			t.Fatalf("findings %q, want one ok or warn from the kernel", fs.lines())
		}
	})
}

// openStore makes a store with an audit entry in a fresh data_dir and
// returns it open (holding the lock, as a running tekend does).
func openStore(t *testing.T) (daemon.Config, *queue.Store) {
	t.Helper()
	cfg := daemon.DefaultConfig()
	cfg.DataDir = t.TempDir()
	s, err := queue.Open(daemon.StorePath(cfg.DataDir), queue.Options{TerminalID: "sultra-test-01", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	for range 3 {
		if _, err := s.AppendAudit(context.Background(), queue.AuditEntry{Event: queue.EventReceived, JobID: "01J0000000000000000000TEST"}); err != nil {
			t.Fatal(err)
		}
	}
	return cfg, s
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	t.Run("none yet", func(t *testing.T) {
		cfg := daemon.DefaultConfig()
		cfg.DataDir = t.TempDir()
		var fs findings
		testCheckup(t, cfg, &fs).store(ctx)
		fs.one(t, HealthWarn, "none yet — tekend makes it when it first starts")
	})
	t.Run("tekend stopped", func(t *testing.T) {
		cfg, s := openStore(t)
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		var fs findings
		testCheckup(t, cfg, &fs).store(ctx)
		fs.one(t, HealthOK, "audit chain of 3 entries intact; 0 letters waiting, 0 results undelivered")
	})
	t.Run("tekend running, no admin socket", func(t *testing.T) {
		cfg, _ := openStore(t)
		var fs findings
		testCheckup(t, cfg, &fs).store(ctx)
		fs.one(t, HealthWarn, "tekend is running; integrity checked only when it is stopped")
	})
	t.Run("tekend running, hot backup", func(t *testing.T) {
		cfg, s := openStore(t)
		sock := filepath.Join(t.TempDir(), "tekend.sock")
		srv, err := admin.Listen(sock, admin.ServerOptions{Store: s, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(sctx) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("admin server: %v", err)
			}
		})
		var fs findings
		testCheckup(t, cfg, &fs, func(o *Options) { o.AdminSocket = sock }).store(ctx)
		fs.one(t, HealthOK, "(hot backup): audit chain of 3 entries intact")
		if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "teken-doctor-*.db")); len(left) > 0 {
			t.Errorf("copies left behind: %q", left)
		}
	})
	t.Run("not a store", func(t *testing.T) {
		cfg := daemon.DefaultConfig()
		cfg.DataDir = t.TempDir()
		if err := os.WriteFile(daemon.StorePath(cfg.DataDir), []byte("queued\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var fs findings
		testCheckup(t, cfg, &fs).store(ctx)
		fs.one(t, HealthFail, "keep the file for investigation")
	})
}

func TestTekend(t *testing.T) {
	serve := func(code int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(code)
			fmt.Fprint(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	for _, tc := range []struct {
		name, listen string
		health       Health
		want         string
	}{
		{"ready", serve(200, "ready\n"), HealthOK, "running and ready (/readyz on 127.0.0.1:"},
		{"not ready", serve(503, "broker: not connected\npcscd: unavailable\n"), HealthFail, "running, not ready: broker: not connected; pcscd: unavailable"},
		{"credentials", serve(401, "Unauthorized"), HealthWarn, "wants the credentials of metrics.web_config"},
		{"not running", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), HealthFail, "not running: nothing answers on 127.0.0.1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := daemon.DefaultConfig()
			cfg.Metrics.Listen = tc.listen
			var fs findings
			testCheckup(t, cfg, &fs).tekend(context.Background())
			fs.one(t, tc.health, tc.want)
		})
	}
}

func TestLocalAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9470": "127.0.0.1:9470", "0.0.0.0:9470": "127.0.0.1:9470", ":9470": "127.0.0.1:9470",
		"[::]:9470": "[::1]:9470", "10.20.1.17:9470": "10.20.1.17:9470", "localhost:9470": "localhost:9470",
	} {
		if got := localAddr(in); got != want {
			t.Errorf("localAddr(%q) = %q, want %q", in, got, want)
		}
	}
	if _, _, err := net.SplitHostPort(localAddr("[::]:1")); err != nil {
		t.Error(err)
	}
}
