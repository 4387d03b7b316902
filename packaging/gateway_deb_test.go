package packaging_test

import (
	"bytes"
	"context"
	"encoding"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tekenid/teken/gateway"
	"github.com/tekenid/teken/internal/testenv"
)

const (
	gatewayConfig = repoRoot + "/packaging/tekengw.toml"
	gatewayUnit   = repoRoot + "/systemd/tekengw.service"
	gatewayPkg    = "teken-gateway"
)

// buildGatewayDeb runs `make deb-gateway` into a fresh directory and
// returns the package.
func buildGatewayDeb(t *testing.T) string {
	t.Helper()
	testenv.LookPath(t, "make")
	testenv.LookPath(t, "dpkg-deb")
	dist := t.TempDir()
	out := run(t, 10*time.Minute, "make", "-C", repoRoot, "--no-print-directory", "deb-gateway", "DEB_DIST="+dist)
	debs, err := filepath.Glob(filepath.Join(dist, "*.deb"))
	if err != nil || len(debs) != 1 {
		t.Fatalf("make deb-gateway made %v (err %v), want one .deb; output:\n%s", debs, err, out)
	}
	return debs[0]
}

// TestGatewayDeb builds the gateway's package once and checks it as
// TestDeb checks the terminal's: control fields, files, lintian, the unit,
// the packaged binary on the shipped configuration, and a real install,
// upgrade, removal and purge with dpkg.
func TestGatewayDeb(t *testing.T) {
	deb := buildGatewayDeb(t)

	t.Run("name and control", func(t *testing.T) { checkGatewayControl(t, deb) })
	t.Run("files", func(t *testing.T) { checkGatewayFiles(t, deb) })
	t.Run("lintian", func(t *testing.T) { checkGatewayLintian(t, deb) })
	t.Run("unit", checkGatewayUnit)
	t.Run("check-config", func(t *testing.T) { checkGatewayBinary(t, deb) })
	t.Run("install and purge", func(t *testing.T) { checkGatewayInstall(t, deb) })
}

func checkGatewayControl(t *testing.T, deb string) {
	version := field(t, deb, "Version")
	if out, err := tryRun(t, time.Minute, "dpkg", "--validate-version", version); err != nil {
		t.Errorf("Version %q is not a valid Debian version: %s", version, out)
	}
	arch := field(t, deb, "Architecture")
	if want := gatewayPkg + "_" + version + "_" + arch + ".deb"; filepath.Base(deb) != want {
		t.Errorf("package file %s, want %s", filepath.Base(deb), want)
	}
	for _, tc := range []struct{ field, want string }{
		{"Package", gatewayPkg},
		{"Depends", "libc6"},
		{"Depends", "systemd | adduser"},
		{"Recommends", "mosquitto"},
		{"Suggests", "postgresql"},
	} {
		if got := field(t, deb, tc.field); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q does not name %q", tc.field, got, tc.want)
		}
	}
	// The gateway needs neither the terminal's PC/SC stack nor its kiosk.
	if got := field(t, deb, "Depends"); strings.Contains(got, "pcsc") {
		t.Errorf("Depends: %q names PC/SC, which the gateway does not use", got)
	}
}

func checkGatewayFiles(t *testing.T, deb string) {
	files := contents(t, deb)
	for _, tc := range []struct{ path, mode string }{
		{"/usr/bin/tekengw", "-rwxr-xr-x"},
		{"/usr/lib/systemd/system/tekengw.service", "-rw-r--r--"},
		{"/usr/lib/sysusers.d/teken-gateway.conf", "-rw-r--r--"},
		{"/usr/lib/tmpfiles.d/teken-gateway.conf", "-rw-r--r--"},
		{"/etc/teken", "drwxr-xr-x"},
		{"/etc/teken/tekengw.toml", "-rw-r-----"},
		{"/usr/share/teken-gateway/prometheus/gateway-alerts.yml", "-rw-r--r--"},
		{"/usr/share/doc/teken-gateway/copyright", "-rw-r--r--"},
		{"/usr/share/doc/teken-gateway/changelog.Debian.gz", "-rw-r--r--"},
		{"/usr/share/doc/teken-gateway/GATEWAY.md", "-rw-r--r--"},
		{"/usr/share/doc/teken-gateway/openapi.yaml", "-rw-r--r--"},
		{"/usr/share/lintian/overrides/teken-gateway", "-rw-r--r--"},
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
	// Nothing of the terminal's package: both may be installed on one host.
	for p := range files {
		if strings.HasPrefix(p, "/usr/share/doc/teken/") || strings.HasPrefix(p, "/usr/share/teken/") || p == "/etc/teken/tekend.toml" {
			t.Errorf("%s belongs to the teken package", p)
		}
	}

	ctrl := t.TempDir()
	run(t, time.Minute, "dpkg-deb", "--control", deb, ctrl)
	conffiles, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if err != nil || string(conffiles) != "/etc/teken/tekengw.toml\n" {
		t.Errorf("conffiles = %q (%v), want just /etc/teken/tekengw.toml", conffiles, err)
	}

	root := t.TempDir()
	run(t, time.Minute, "dpkg-deb", "--extract", deb, root)
	// gzip -9n: no name, no time stamp (reproducible), best compression.
	b, err := os.ReadFile(filepath.Join(root, "usr/share/doc/teken-gateway/changelog.Debian.gz"))
	if err != nil || len(b) < 10 {
		t.Fatalf("changelog.Debian.gz: %v", err)
	}
	if b[0] != 0x1f || b[1] != 0x8b || b[3]&0x08 != 0 || !bytes.Equal(b[4:8], []byte{0, 0, 0, 0}) || b[8] != 2 {
		t.Errorf("changelog.Debian.gz: gzip header % x, want no name, no mtime, -9", b[:10])
	}
	// The shipped files are the repository's, unchanged.
	for dst, src := range map[string]string{
		"etc/teken/tekengw.toml":                                gatewayConfig,
		"usr/lib/systemd/system/tekengw.service":                gatewayUnit,
		"usr/share/doc/teken-gateway/openapi.yaml":              repoRoot + "/gateway/openapi.yaml",
		"usr/share/doc/teken-gateway/GATEWAY.md":                repoRoot + "/docs/GATEWAY.md",
		"usr/share/teken-gateway/prometheus/gateway-alerts.yml": gatewayRules,
	} {
		got, err1 := os.ReadFile(filepath.Join(root, dst))
		want, err2 := os.ReadFile(src)
		if err := errors.Join(err1, err2); err != nil || !bytes.Equal(got, want) {
			t.Errorf("/%s differs from %s (%v)", dst, src, err)
		}
	}
}

func checkGatewayLintian(t *testing.T, deb string) {
	lintian := testenv.LookPath(t, "lintian")
	out, err := tryRun(t, 3*time.Minute, lintian, "--fail-on", "error,warning", "--display-info", deb)
	var bad []string
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
			bad = append(bad, strings.TrimSpace(line))
		}
	}
	if err != nil || len(bad) > 0 {
		t.Errorf("lintian: %v; errors and warnings not overridden in packaging/gateway/lintian-overrides:\n%s\n%s", err, strings.Join(bad, "\n"), out)
	}
}

// checkGatewayUnit verifies the unit offline, measures its exposure, and
// holds it to tekend.service's sandbox wherever that applies.
func checkGatewayUnit(t *testing.T) {
	analyze := testenv.LookPath(t, "systemd-analyze")
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, time.Minute, "cp", "-a", "/usr/lib/systemd", filepath.Join(root, "usr/lib/"))
	// verify checks only that ExecStartPre and ExecStart name an
	// executable; the real binary runs in "check-config".
	run(t, time.Minute, "install", "-m", "0755", "/bin/true", filepath.Join(root, "usr/bin/tekengw"))
	run(t, time.Minute, "install", "-m", "0644", gatewayUnit, filepath.Join(root, "usr/lib/systemd/system/"))
	if out, err := tryRun(t, time.Minute, analyze, "verify", "--man=no", "--root="+root, "tekengw.service"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out := run(t, time.Minute, analyze, "security", "--offline=true", "--root="+root, "tekengw.service")
	m := regexp.MustCompile(`Overall exposure level for tekengw.service: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security exposure of tekengw.service: %.1f", score)
	if score > maxExposure {
		t.Errorf("exposure %.1f > %.1f:\n%s", score, maxExposure, out)
	}

	gw := unitSettings(t, gatewayUnit, "[Service]")
	for key, want := range map[string]string{
		"Type":                    "notify",
		"NotifyAccess":            "main",
		"ExecStartPre":            "/usr/bin/tekengw check-config -config /etc/teken/tekengw.toml",
		"ExecStart":               "/usr/bin/tekengw -config /etc/teken/tekengw.toml",
		"Restart":                 "on-failure",
		"User":                    "teken-gateway",
		"Group":                   "teken-gateway",
		"StateDirectory":          "teken-gateway",
		"StateDirectoryMode":      "0700",
		"PrivateDevices":          "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
	} {
		if got := strings.Join(gw[key], "\n"); got != want {
			t.Errorf("%s=%q, want %q", key, got, want)
		}
	}
	// Every other setting of tekend's [Service] is sandboxing the gateway
	// takes over as it is, so that hardening added to tekend is not
	// forgotten here.
	notApplicable := []string{"Type", "NotifyAccess", "ExecStart", "ExecReload", "WatchdogSec", "Restart", "RestartSec",
		"TimeoutStopSec", "MemoryMax", "User", "Group", "StateDirectory", "ConfigurationDirectory",
		"ConfigurationDirectoryMode", "RuntimeDirectory", "RuntimeDirectoryMode"}
	for key, want := range unitSettings(t, repoRoot+"/systemd/tekend.service", "[Service]") {
		if slices.Contains(notApplicable, key) {
			continue
		}
		if got := gw[key]; !slices.Equal(got, want) {
			t.Errorf("%s=%q in tekengw.service, tekend.service has %q", key, got, want)
		}
	}
	deps := unitSettings(t, gatewayUnit, "[Unit]")
	if strings.Contains(strings.Join(slices.Concat(deps["Wants"], deps["After"]), " "), "pcscd") {
		t.Errorf("tekengw.service waits for pcscd, which the gateway does not use")
	}
}

// unitSettings returns the settings of one section of a unit file
// ("[Service]"), each key's values in order.
func unitSettings(t *testing.T, path, want string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	section := ""
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == want:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not a setting", path, line)
			}
			out[k] = append(out[k], v)
		}
	}
	return out
}

// checkGatewayBinary runs the packaged tekengw on the shipped
// configuration, as the unit's ExecStartPre does, and asks it for a key.
func checkGatewayBinary(t *testing.T, deb string) {
	root := t.TempDir()
	run(t, time.Minute, "dpkg-deb", "--extract", deb, root)
	bin := filepath.Join(root, "usr/bin/tekengw")
	conf := filepath.Join(root, "etc/teken/tekengw.toml")
	if out := run(t, time.Minute, bin, "check-config", "-config", conf); strings.TrimSpace(out) != conf+": ok" {
		t.Errorf("tekengw check-config = %q, want %q", out, conf+": ok")
	}
	// A configuration with a mistake fails the check, and the message names
	// the field.
	bad := filepath.Join(t.TempDir(), "bad.toml")
	raw, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, bytes.Replace(raw, []byte(`listen = "127.0.0.1:8480"`), []byte(`listen = ":8480"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := tryRun(t, time.Minute, bin, "check-config", "-config", bad); err == nil || !strings.Contains(out, "listen") {
		t.Errorf("tekengw check-config on listen \":8480\" = %v, %q; want a failure naming listen", err, out)
	}
	key := run(t, time.Minute, bin, "key")
	if !regexp.MustCompile(`(?m)^key: +tk_\S{43}\nkey_sha256: [0-9a-f]{64}$`).MatchString(key) {
		t.Errorf("tekengw key printed %q", key)
	}
}

// TestGatewayConfig: the shipped configuration loads, names no letter
// system, and documents every setting with its real default, in comments
// that, uncommented, are themselves valid settings.
func TestGatewayConfig(t *testing.T) {
	cfg, err := gateway.LoadConfig(gatewayConfig)
	if err != nil {
		t.Fatalf("gateway.LoadConfig: %v", err)
	}
	if cfg.Listen != "127.0.0.1:8480" || cfg.Store.Kind != "bolt" || cfg.Store.Path != "/var/lib/teken-gateway/gateway.db" ||
		cfg.DispatcherKeyFile != "/etc/teken/dispatcher.key" {
		t.Errorf("shipped listen %q, store %s %q, dispatcher key %q", cfg.Listen, cfg.Store.Kind, cfg.Store.Path, cfg.DispatcherKeyFile)
	}
	if len(cfg.Clients) != 0 {
		t.Errorf("the shipped configuration allows %d clients, want none", len(cfg.Clients))
	}
	// The unit, the package and the binary's default agree on the path.
	if gateway.DefaultConfigPath != "/etc/teken/tekengw.toml" {
		t.Errorf("gateway.DefaultConfigPath = %q; the unit and nfpm.yaml say /etc/teken/tekengw.toml", gateway.DefaultConfigPath)
	}

	raw, err := os.ReadFile(gatewayConfig)
	if err != nil {
		t.Fatal(err)
	}
	// A commented setting is "#key = value" or "#[table]", with no space
	// after the "#"; prose has one.
	setting := regexp.MustCompile(`(?m)^#(\[|[a-z0-9_]+ = )`)
	all := setting.ReplaceAllString(string(raw), "$1")
	var full gateway.Config
	md, err := toml.Decode(all, &full)
	if err != nil {
		t.Fatalf("the configuration with every setting uncommented does not parse: %v\n%s", err, all)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Errorf("settings the gateway does not know: %v", u)
	}
	have := map[string]bool{}
	for _, k := range md.Keys() {
		have[k.String()] = true
	}
	for _, k := range configKeys(reflect.TypeFor[gateway.Config](), "") {
		if !have[k] {
			t.Errorf("%s is not in %s, not even commented out", k, gatewayConfig)
		}
	}

	// The commented values are the defaults: what the file says a missing
	// field takes is what it does take.
	def := gateway.DefaultConfig()
	def.DispatcherKeyFile = cfg.DispatcherKeyFile
	got := full
	got.Groups, got.Clients = nil, nil
	if len(got.SignerCertFiles) == 0 {
		got.SignerCertFiles = nil
	}
	if len(got.SignerCAFiles) == 0 {
		got.SignerCAFiles = nil
	}
	if !reflect.DeepEqual(got, def) {
		t.Errorf("the commented settings are not the defaults:\n got %+v\nwant %+v", got, def)
	}

	// The example client carries no hash that would pass for a real key's:
	// uncommented as it is, it fails the check, naming key_sha256.
	if len(full.Clients) == 0 || len(full.Clients[0].Webhooks) == 0 {
		t.Fatalf("no commented [[clients]] example with a webhook: %+v", full.Clients)
	}
	if err := full.Validate(); err == nil || !strings.Contains(err.Error(), "key_sha256") {
		t.Errorf("the uncommented example client validates (%v); its key_sha256 must be a placeholder that fails", err)
	}
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// configKeys lists the dotted TOML keys of a configuration struct; the
// fields of arrays of tables are listed under the array's key, as
// toml.MetaData.Keys names them.
func configKeys(typ reflect.Type, prefix string) []string {
	var keys []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		keys = append(keys, key)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(textUnmarshaler) {
			keys = append(keys, configKeys(ft, key+".")...)
		}
	}
	return keys
}

// checkGatewayInstall installs the package on this (disposable) machine,
// checks the user, the permissions and the binary as that user on the
// shipped configuration, reinstalls it over a store, removes it (the store
// stays) and purges it (the store goes, the user stays). It always purges
// at the end.
func checkGatewayInstall(t *testing.T, deb string) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "installing a package needs root")
	}
	dpkg := testenv.LookPath(t, "dpkg")
	if out, err := tryRun(t, time.Minute, "dpkg-query", "-W", "-f=${db:Status-Status}", gatewayPkg); err == nil && strings.TrimSpace(out) != "not-installed" {
		testenv.Unavailable(t, "%s is already on this machine (%s); the test installs and purges it", gatewayPkg, out)
	}
	t.Cleanup(func() {
		if out, err := runContext(context.Background(), 2*time.Minute, dpkg, "--purge", gatewayPkg); err != nil {
			t.Errorf("cleanup: dpkg --purge %s: %v\n%s", gatewayPkg, err, out)
		}
	})
	run(t, 2*time.Minute, dpkg, "--install", deb)

	for _, name := range []string{"passwd", "group"} {
		if out, err := tryRun(t, time.Minute, "getent", name, gatewayPkg); err != nil {
			t.Fatalf("getent %s %s after install: %v %s", name, gatewayPkg, err, out)
		}
	}
	for _, tc := range []struct{ path, want string }{
		{"/etc/teken/tekengw.toml", "640 root:teken-gateway"},
		{"/var/lib/teken-gateway", "700 teken-gateway:teken-gateway"},
		{"/etc/teken", "755 root:root"},
		{"/usr/bin/tekengw", "755 root:root"},
	} {
		if got := strings.TrimSpace(run(t, time.Minute, "stat", "-c", "%a %U:%G", tc.path)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.path, got, tc.want)
		}
	}
	// The service's user passes its ExecStartPre on the shipped file; others
	// cannot read the file.
	runuser := testenv.LookPath(t, "runuser")
	run(t, time.Minute, runuser, "-u", gatewayPkg, "--", "/usr/bin/tekengw", "check-config", "-config", "/etc/teken/tekengw.toml")
	if out, err := tryRun(t, time.Minute, runuser, "-u", "nobody", "--", "head", "-c1", "/etc/teken/tekengw.toml"); err == nil {
		t.Errorf("user nobody can read /etc/teken/tekengw.toml: %q", out)
	}
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := tryRun(t, time.Minute, analyze, "verify", "--man=no", "/usr/lib/systemd/system/tekengw.service"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
		}
	}

	store := "/var/lib/teken-gateway/gateway.db"
	run(t, time.Minute, runuser, "-u", gatewayPkg, "--", "sh", "-c", "echo queued > "+store)
	run(t, 2*time.Minute, dpkg, "--install", deb)
	assertGatewayStore(t, store, "after reinstall")
	run(t, 2*time.Minute, dpkg, "--remove", gatewayPkg)
	assertGatewayStore(t, store, "after remove")
	if _, err := os.Stat("/usr/bin/tekengw"); err == nil {
		t.Errorf("/usr/bin/tekengw still there after remove")
	}

	run(t, 2*time.Minute, dpkg, "--purge", gatewayPkg)
	for _, p := range []string{"/var/lib/teken-gateway", "/etc/teken/tekengw.toml"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s still there after purge", p)
		}
	}
	if _, err := tryRun(t, time.Minute, "getent", "passwd", gatewayPkg); err != nil {
		t.Errorf("user %s removed on purge; system users are kept", gatewayPkg)
	}
}

func assertGatewayStore(t *testing.T, path, when string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "queued\n" {
		t.Errorf("store %s %s: %q, %v", path, when, b, err)
	}
	if got := strings.TrimSpace(run(t, time.Minute, "stat", "-c", "%a %U:%G", filepath.Dir(path))); got != "700 teken-gateway:teken-gateway" {
		t.Errorf("%s %s: %s, want 700 teken-gateway:teken-gateway", filepath.Dir(path), when, got)
	}
}
