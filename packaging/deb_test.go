package packaging_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// repoRoot is where `make deb` runs; go test runs in this directory.
const repoRoot = ".."

// maxExposure is the highest `systemd-analyze security` score the unit may
// have (docs/INSTALL.md records the measured one).
const maxExposure = 2.0

// buildDeb runs `make deb` into a fresh directory and returns the package.
func buildDeb(t *testing.T) string {
	t.Helper()
	testenv.LookPath(t, "make")
	testenv.LookPath(t, "dpkg-deb")
	testenv.LookPath(t, "gcc")
	dist := t.TempDir()
	out := run(t, 5*time.Minute, "make", "-C", repoRoot, "--no-print-directory", "deb", "DEB_DIST="+dist)
	debs, err := filepath.Glob(filepath.Join(dist, "*.deb"))
	if err != nil || len(debs) != 1 {
		t.Fatalf("make deb made %v (err %v), want one .deb; output:\n%s", debs, err, out)
	}
	return debs[0]
}

// run runs a command and returns its combined output; it fails the test on
// a non-zero exit.
func run(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := tryRun(t, timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func tryRun(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	return runContext(t.Context(), timeout, name, args...)
}

// runContext is tryRun for cleanups, which run after t.Context is done.
func runContext(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestDeb builds the package once and checks it from the outside in: its
// name and control fields, its files, lintian, the unit, and a real
// install, upgrade, removal and purge with dpkg.
func TestDeb(t *testing.T) {
	deb := buildDeb(t)

	t.Run("name and control", func(t *testing.T) { checkControl(t, deb) })
	t.Run("files", func(t *testing.T) { checkFiles(t, deb) })
	t.Run("lintian", func(t *testing.T) { checkLintian(t, deb) })
	t.Run("unit", checkUnit)
	t.Run("polkit rule", checkPolkitRule)
	t.Run("install and purge", func(t *testing.T) { checkInstall(t, deb) })
}

func field(t *testing.T, deb, name string) string {
	t.Helper()
	return strings.TrimSpace(run(t, time.Minute, "dpkg-deb", "--field", deb, name))
}

func checkControl(t *testing.T, deb string) {
	version := field(t, deb, "Version")
	if out, err := tryRun(t, time.Minute, "dpkg", "--validate-version", version); err != nil {
		t.Errorf("Version %q is not a valid Debian version: %s", version, out)
	}
	// A build from a tree without a release tag must sort before any 0.1.0
	// release, and name its commit.
	if !regexp.MustCompile(`^(\d+\.\d+\.\d+([~+][0-9A-Za-z.~+]*)?|0\.1\.0~git\d{14}\.[0-9a-f]{12}(\+dirty)?)-1$`).MatchString(version) {
		t.Errorf("Version %q is not derived from git as documented", version)
	}
	arch := field(t, deb, "Architecture")
	if want := "teken_" + version + "_" + arch + ".deb"; filepath.Base(deb) != want {
		t.Errorf("package file %s, want %s", filepath.Base(deb), want)
	}
	for _, tc := range []struct{ field, want string }{
		{"Package", "teken"},
		{"Depends", "pcscd"},
		{"Depends", "libpcsclite1"},
		{"Depends", "systemd | adduser"},
		{"Depends", "libc6"},
		{"Recommends", "chromium"},
	} {
		if got := field(t, deb, tc.field); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q does not name %q", tc.field, got, tc.want)
		}
	}
}

// entry is one line of `dpkg-deb --contents`.
type entry struct{ mode, owner string }

func contents(t *testing.T, deb string) map[string]entry {
	t.Helper()
	files := map[string]entry{}
	for line := range strings.Lines(run(t, time.Minute, "dpkg-deb", "--contents", deb)) {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		files[strings.TrimPrefix(strings.TrimSuffix(f[5], "/"), ".")] = entry{f[0], f[1]}
	}
	return files
}

func checkFiles(t *testing.T, deb string) {
	files := contents(t, deb)
	for _, tc := range []struct{ path, mode string }{
		{"/usr/bin/tekend", "-rwxr-xr-x"},
		{"/usr/bin/tekenctl", "-rwxr-xr-x"},
		{"/usr/lib/systemd/system/tekend.service", "-rw-r--r--"},
		{"/usr/lib/sysusers.d/teken.conf", "-rw-r--r--"},
		{"/usr/lib/tmpfiles.d/teken.conf", "-rw-r--r--"},
		{"/etc/teken/tekend.toml", "-rw-r-----"},
		{"/usr/share/polkit-1/rules.d/60-teken-pcscd.rules", "-rw-r--r--"},
		{"/usr/share/teken/prometheus/alerts.yml", "-rw-r--r--"},
		{"/usr/share/teken/grafana/teken.json", "-rw-r--r--"},
		{"/usr/share/man/man8/tekend.8.gz", "-rw-r--r--"},
		{"/usr/share/man/man1/tekenctl.1.gz", "-rw-r--r--"},
		{"/usr/share/bash-completion/completions/tekenctl", "-rw-r--r--"},
		{"/usr/share/doc/teken/copyright", "-rw-r--r--"},
		{"/usr/share/doc/teken/changelog.Debian.gz", "-rw-r--r--"},
		{"/usr/share/doc/teken/INSTALL.md", "-rw-r--r--"},
		{"/usr/share/doc/teken/MONITORING.md", "-rw-r--r--"},
		{"/usr/share/doc/teken/OPERATIONS.md", "-rw-r--r--"},
		{"/usr/share/doc/teken/ENROLMENT.md", "-rw-r--r--"},
		{"/usr/share/doc/teken/examples/teken-kiosk.service", "-rw-r--r--"},
	} {
		e, ok := files[tc.path]
		if !ok {
			t.Errorf("%s missing from the package", tc.path)
			continue
		}
		if e.mode != tc.mode || e.owner != "root/root" {
			t.Errorf("%s: %s %s, want %s root/root", tc.path, e.mode, e.owner, tc.mode)
		}
	}

	// The configuration is a conffile, so an operator's edits survive upgrades.
	ctrl := t.TempDir()
	run(t, time.Minute, "dpkg-deb", "--control", deb, ctrl)
	conffiles, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if err != nil || !strings.Contains(string(conffiles), "/etc/teken/tekend.toml\n") {
		t.Errorf("conffiles = %q (%v), want /etc/teken/tekend.toml", conffiles, err)
	}

	// gzip -9n: no name, no time stamp (reproducible), best compression.
	root := t.TempDir()
	run(t, time.Minute, "dpkg-deb", "--extract", deb, root)
	for _, p := range []string{"usr/share/man/man8/tekend.8.gz", "usr/share/man/man1/tekenctl.1.gz", "usr/share/doc/teken/changelog.Debian.gz"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || len(b) < 10 {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if b[0] != 0x1f || b[1] != 0x8b || b[3]&0x08 != 0 || !bytes.Equal(b[4:8], []byte{0, 0, 0, 0}) || b[8] != 2 {
			t.Errorf("%s: gzip header % x, want no name, no mtime, -9", p, b[:10])
		}
	}

	// The manual pages come from the binaries' own --help, so each flag and
	// command is in them.
	man := run(t, time.Minute, "man", "--warnings", "-l", "-Tutf8", filepath.Join(root, "usr/share/man/man1/tekenctl.1.gz"))
	for _, want := range []string{"tekenctl keygen", "tekenctl fleet", "-watch"} {
		if !strings.Contains(man, want) {
			t.Errorf("tekenctl(1) lacks %q", want)
		}
	}
}

func checkLintian(t *testing.T, deb string) {
	lintian := testenv.LookPath(t, "lintian")
	out, err := tryRun(t, 3*time.Minute, lintian, "--fail-on", "error,warning", "--display-info", deb)
	var bad []string
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
			bad = append(bad, strings.TrimSpace(line))
		}
	}
	if err != nil || len(bad) > 0 {
		t.Errorf("lintian: %v; errors and warnings not overridden in packaging/debian/lintian-overrides:\n%s\n%s", err, strings.Join(bad, "\n"), out)
	}
}

// checkUnit verifies the unit offline against the host's units and this
// build's tekend, and measures its exposure.
func checkUnit(t *testing.T) {
	analyze := testenv.LookPath(t, "systemd-analyze")
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, time.Minute, "cp", "-a", "/usr/lib/systemd", filepath.Join(root, "usr/lib/"))
	// verify checks only that ExecStart names an executable; the installed
	// package's real binary is verified in "install and purge".
	run(t, time.Minute, "install", "-m", "0755", "/bin/true", filepath.Join(root, "usr/bin/tekend"))
	run(t, time.Minute, "install", "-D", "-m", "0755", "/bin/true", filepath.Join(root, "bin/kill")) // ExecReload
	run(t, time.Minute, "install", "-m", "0644", repoRoot+"/systemd/tekend.service", filepath.Join(root, "usr/lib/systemd/system/"))
	if out, err := tryRun(t, time.Minute, analyze, "verify", "--man=no", "--root="+root, "tekend.service"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	out := run(t, time.Minute, analyze, "security", "--offline=true", "--root="+root, "tekend.service")
	m := regexp.MustCompile(`Overall exposure level for tekend.service: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security exposure: %.1f", score)
	if score > maxExposure {
		t.Errorf("exposure %.1f > %.1f:\n%s", score, maxExposure, out)
	}
	doc, err := os.ReadFile(repoRoot + "/docs/INSTALL.md")
	if err != nil || !strings.Contains(string(doc), fmt.Sprintf("exposure level %.1f", score)) {
		t.Errorf("docs/INSTALL.md does not record the exposure level %.1f (%v)", score, err)
	}

	if out, err := tryRun(t, time.Minute, analyze, "verify", "--man=no", repoRoot+"/systemd/teken-kiosk.service"); err != nil && !strings.Contains(out, "chromium") {
		t.Errorf("systemd-analyze verify teken-kiosk.service: %v\n%s", err, out)
	}
}

// checkPolkitRule runs the rule in a JavaScript engine with the two pcscd
// actions, for user teken and for someone else.
func checkPolkitRule(t *testing.T) {
	node := testenv.LookPath(t, "node")
	const harness = `
const fs = require("fs");
let rule;
const polkit = { Result: { YES: "yes" }, addRule: (f) => { rule = f; } };
eval(fs.readFileSync(process.argv[1], "utf8"));
const cases = [];
for (const user of ["teken", "official", "root"]) {
  for (const id of ["org.debian.pcsc-lite.access_pcsc", "org.debian.pcsc-lite.access_card", "org.freedesktop.login1.reboot"]) {
    cases.push(user + " " + id + " " + (rule({ id: id }, { user: user }) || "none"));
  }
}
console.log(cases.join("\n"));
`
	out := run(t, time.Minute, node, "-e", harness, repoRoot+"/packaging/polkit/60-teken-pcscd.rules")
	want := `teken org.debian.pcsc-lite.access_pcsc yes
teken org.debian.pcsc-lite.access_card yes
teken org.freedesktop.login1.reboot none
official org.debian.pcsc-lite.access_pcsc none
official org.debian.pcsc-lite.access_card none
official org.freedesktop.login1.reboot none
root org.debian.pcsc-lite.access_pcsc none
root org.debian.pcsc-lite.access_card none
root org.freedesktop.login1.reboot none`
	if strings.TrimSpace(out) != want {
		t.Errorf("polkit rule decisions:\n%s\nwant:\n%s", out, want)
	}
}

// checkInstall installs the package on this (disposable) machine, checks
// the user, permissions and the binary as that user, reinstalls it over a
// store, removes it (the store stays) and purges it (the store goes, the
// user stays: see docs/INSTALL.md). It always purges at the end.
func checkInstall(t *testing.T, deb string) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "installing a package needs root")
	}
	dpkg := testenv.LookPath(t, "dpkg")
	if out, err := tryRun(t, time.Minute, "dpkg-query", "-W", "-f=${db:Status-Status}", "teken"); err == nil && strings.TrimSpace(out) != "not-installed" {
		testenv.Unavailable(t, "teken is already on this machine (%s); the test installs and purges it", out)
	}
	t.Cleanup(func() {
		if out, err := runContext(context.Background(), 2*time.Minute, dpkg, "--purge", "teken"); err != nil {
			t.Errorf("cleanup: dpkg --purge teken: %v\n%s", err, out)
		}
	})
	run(t, 2*time.Minute, dpkg, "--install", deb)

	for _, name := range []string{"passwd", "group"} {
		if out, err := tryRun(t, time.Minute, "getent", name, "teken"); err != nil {
			t.Fatalf("getent %s teken after install: %v %s", name, err, out)
		}
	}
	for _, tc := range []struct{ path, want string }{
		{"/etc/teken/tekend.toml", "640 root:teken"},
		{"/var/lib/teken", "700 teken:teken"},
		{"/etc/teken", "755 root:root"},
		{"/usr/bin/tekend", "755 root:root"},
	} {
		if got := strings.TrimSpace(run(t, time.Minute, "stat", "-c", "%a %U:%G", tc.path)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.path, got, tc.want)
		}
	}

	// The daemon's user runs it and reads its configuration; others cannot.
	runuser := testenv.LookPath(t, "runuser")
	out := run(t, time.Minute, runuser, "-u", "teken", "--", "/usr/bin/tekend", "--version")
	if !strings.HasPrefix(out, "tekend ") || strings.Contains(out, "devel") {
		t.Errorf("tekend --version as teken = %q, want a stamped version", out)
	}
	run(t, time.Minute, runuser, "-u", "teken", "--", "head", "-c1", "/etc/teken/tekend.toml")
	if out, err := tryRun(t, time.Minute, runuser, "-u", "nobody", "--", "head", "-c1", "/etc/teken/tekend.toml"); err == nil {
		t.Errorf("user nobody can read /etc/teken/tekend.toml: %q", out)
	}
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := tryRun(t, time.Minute, analyze, "verify", "--man=no", "/usr/lib/systemd/system/tekend.service"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
		}
	}

	// A store written by the daemon survives a reinstall (as an upgrade
	// does) and a removal.
	store := "/var/lib/teken/tekend.db"
	run(t, time.Minute, runuser, "-u", "teken", "--", "sh", "-c", "echo queued > "+store)
	run(t, 2*time.Minute, dpkg, "--install", deb)
	assertStore(t, store, "after reinstall")
	run(t, 2*time.Minute, dpkg, "--remove", "teken")
	assertStore(t, store, "after remove")
	if _, err := os.Stat("/usr/bin/tekend"); err == nil {
		t.Errorf("/usr/bin/tekend still there after remove")
	}

	run(t, 2*time.Minute, dpkg, "--purge", "teken")
	for _, p := range []string{"/var/lib/teken", "/etc/teken"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s still there after purge", p)
		}
	}
	// System users are kept on purge (Debian's practice), so files they own
	// elsewhere never pass to a new user with the same uid.
	if _, err := tryRun(t, time.Minute, "getent", "passwd", "teken"); err != nil {
		t.Errorf("user teken removed on purge; INSTALL.md says it is kept")
	}
}

func assertStore(t *testing.T, path, when string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "queued\n" {
		t.Errorf("store %s %s: %q, %v", path, when, b, err)
	}
	if got := strings.TrimSpace(run(t, time.Minute, "stat", "-c", "%a %U:%G", filepath.Dir(path))); got != "700 teken:teken" {
		t.Errorf("%s %s: %s, want 700 teken:teken", filepath.Dir(path), when, got)
	}
}
