package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/queue"
)

// otherConfig is c with every field changed: each leaf differs from c's.
func otherConfig(c Config) Config {
	o := c
	var change func(v reflect.Value)
	change = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			switch f.Kind() {
			case reflect.Struct:
				change(f)
			case reflect.String:
				f.SetString(f.String() + "-other")
			case reflect.Bool:
				f.SetBool(!f.Bool())
			case reflect.Int, reflect.Int64:
				f.SetInt(f.Int() + 1)
			case reflect.Slice:
				elem := reflect.New(f.Type().Elem()).Elem()
				if elem.Kind() == reflect.String {
					elem.SetString("other")
				} else {
					change(elem) // a table of an array of tables
				}
				f.Set(reflect.Append(reflect.MakeSlice(f.Type(), 0, 1), elem))
			default:
				panic("otherConfig: add a case for " + f.Type().String())
			}
		}
	}
	change(reflect.ValueOf(&o).Elem())
	return o
}

// Every field but the reloadable ones keeps its running value, and the
// reloadable ones take the new: reloadable and withReloadable agree, and a
// field added to Config later needs a restart until it is made reloadable.
func TestReloadableFieldsAreTheOnesCopied(t *testing.T) {
	running := DefaultConfig()
	next := otherConfig(running)
	all := changedFields(running, next)
	if n := leaves(reflect.TypeFor[Config]()); len(all) != n {
		t.Fatalf("%d of %d fields differ: %v", len(all), n, all)
	}
	applied := withReloadable(running, next)
	if got, want := changedFields(running, applied), ReloadableFields(); !slices.Equal(sorted(got), want) {
		t.Errorf("a reload changes %v, want %v", sorted(got), want)
	}
	var restart []string
	for _, f := range all {
		if !reloadable[f] {
			restart = append(restart, f)
		}
	}
	if got := changedFields(applied, next); !slices.Equal(sorted(got), sorted(restart)) {
		t.Errorf("left for a restart %v, want %v", sorted(got), sorted(restart))
	}
	for f := range reloadable {
		if !slices.Contains(all, f) {
			t.Errorf("reloadable field %s is not a field of Config", f)
		}
	}
	// The running configuration shares no slice with the file's.
	next.Dispatcher.KeyFiles[0] = "changed later"
	if applied.Dispatcher.KeyFiles[0] == "changed later" {
		t.Error("applied shares dispatcher.key_files with the configuration read")
	}
}

// leaves counts the fields of t that are not structs themselves.
func leaves(t reflect.Type) int {
	n := 0
	for f := range t.Fields() {
		if f.Type.Kind() == reflect.Struct {
			n += leaves(f.Type)
		} else {
			n++
		}
	}
	return n
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func TestChangedFields(t *testing.T) {
	a := DefaultConfig()
	b := a
	b.Broker.URLs = []string{}
	if got := changedFields(a, b); len(got) != 0 {
		t.Errorf("no list and an empty one differ: %v", got)
	}
	b.Broker.URLs = []string{"ssl://mqtt.example.go.id:8883"}
	b.Store.Retention = Duration(time.Hour)
	b.TerminalID = "kendari-setda-02"
	if got := strings.Join(changedFields(a, b), " "); got != "terminal_id broker.urls store.retention" {
		t.Errorf("changed %q", got)
	}
}

func TestKeyChanges(t *testing.T) {
	added, removed := keyChanges(map[string]int{"a": 1, "b": 1}, map[string]int{"b": 1, "d": 1, "c": 1})
	if !slices.Equal(added, []string{"c", "d"}) || !slices.Equal(removed, []string{"a"}) {
		t.Errorf("added %v, removed %v", added, removed)
	}
}

// reloadRig is a Daemon with only what a reload touches, and the
// configuration file it reads again.
type reloadRig struct {
	d     *Daemon
	path  string
	cfg   Config // as last written
	level *slog.LevelVar
	logs  *lockedBuffer
	certs certPolicy
	sign  *docSigner
	keys  map[string]*api.Signer // by PEM file
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newReloadRig(t *testing.T) *reloadRig {
	t.Helper()
	dir := t.TempDir()
	r := &reloadRig{path: filepath.Join(dir, "tekend.toml"), level: new(slog.LevelVar), logs: &lockedBuffer{}, keys: map[string]*api.Signer{}}
	r.cfg = DefaultConfig()
	r.cfg.TerminalID = "kendari-setda-01"
	r.cfg.DataDir = filepath.Join(dir, "data")
	r.cfg.Broker.URLs = []string{"tcp://127.0.0.1:1883"}
	r.cfg.Dispatcher.KeyFiles = []string{r.newKey(t, "a.pub")}
	r.write(t, func(*Config) {})
	tr, err := loadTrust(r.cfg, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: r.level}))
	r.d = &Daemon{cfg: r.cfg, opts: Options{ConfigPath: r.path, LogLevel: r.level}, log: log, now: time.Now,
		trust: newLiveTrust(tr), applied: r.cfg}
	parts, err := r.d.ltvPartsOf(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.d.ltv.Store(parts)
	r.certs = certPolicy{live: r.d.trust, now: time.Now, log: log}
	r.sign = &docSigner{live: &r.d.ltv}
	return r
}

// newKey makes a dispatcher key whose public half is in dir/name.
func (r *reloadRig) newKey(t *testing.T, name string) string {
	t.Helper()
	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := api.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(filepath.Dir(r.path), name)
	if err := os.WriteFile(path, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	if r.keys[path], err = api.NewSigner(key); err != nil {
		t.Fatal(err)
	}
	return path
}

// write changes the configuration file.
func (r *reloadRig) write(t *testing.T, adjust func(*Config)) {
	t.Helper()
	adjust(&r.cfg)
	var b bytes.Buffer
	if err := r.cfg.WriteTOML(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// job is an envelope for this terminal signed with the key of file.
func (r *reloadRig) job(t testing.TB, file string) []byte {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	env, err := r.keys[file].SignJob(&api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: "kendari-setda-01",
		IssuedAt: now, ExpiresAt: now.Add(time.Hour), Title: "Surat Edaran", Number: "800/12", Sender: "Setda",
		Signer:    api.Signatory{CertSHA256: strings.Repeat("ab", 32), Name: "Siti"},
		Documents: []api.Document{api.NewDocument("surat", "surat.pdf", "application/pdf", []byte("%PDF-1.7 surat"))}})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// accepted says whether the envelope verifies under the trust in force;
// a refusal must be for its key.
func (r *reloadRig) accepted(t testing.TB, env []byte) bool {
	t.Helper()
	_, _, err := r.d.trust.VerifyJob(env)
	var re *api.RefusalError
	switch {
	case err == nil:
		return true
	case errors.As(err, &re) && re.Reason == api.ReasonUnknownKID:
		return false
	}
	t.Errorf("verify: %v", err)
	return false
}

func TestReloadAppliesKeysCAsTSAAndLevel(t *testing.T) {
	r := newReloadRig(t)
	a := r.cfg.Dispatcher.KeyFiles[0]
	b := r.newKey(t, "b.pub")
	ca := testenv.NewCA(t, "Signer CA")
	official := ca.Client(t, "Siti Rahmawati").TLS.Leaf
	if !r.accepted(t, r.job(t, a)) || r.accepted(t, r.job(t, b)) {
		t.Fatal("before the reload: want key a only")
	}
	r.write(t, func(c *Config) {
		c.Dispatcher.KeyFiles = []string{a, b}
		c.Signing.SignerCAFiles = []string{ca.CertFile}
		c.Signing.TSAURL, c.Signing.TSATimeout = "http://127.0.0.1:9/tsa", Duration(3*time.Second)
		c.LogLevel = "debug"
	})
	if err := r.d.applyConfig(); err != nil {
		t.Fatal(err)
	}
	if !r.accepted(t, r.job(t, a)) || !r.accepted(t, r.job(t, b)) {
		t.Error("after adding key b: want both")
	}
	if m := r.certs.check(official); m != nil {
		t.Errorf("a certificate of the CA added: %v", m.Code)
	}
	if p := r.sign.ltv(); p.tsa == nil || p.level != api.LevelBT {
		t.Errorf("after a tsa_url was given: %+v, want an authority and level B-T", p)
	}
	if r.level.Level() != slog.LevelDebug {
		t.Errorf("log level %v, want debug", r.level.Level())
	}
	if logs := r.logs.String(); !strings.Contains(logs, "configuration reloaded") || !strings.Contains(logs, "keys_added=["+r.keys[b].KID()+"]") ||
		!strings.Contains(logs, "tsa_urls=[http://127.0.0.1:9/tsa]") {
		t.Errorf("the reload is not logged with the key added:\n%s", logs)
	}

	other := testenv.NewCA(t, "Other CA")
	r.write(t, func(c *Config) {
		c.Dispatcher.KeyFiles = []string{b}
		c.Signing.SignerCAFiles = []string{other.CertFile}
		c.Signing.TSAURL = ""
		c.LogLevel = "error"
	})
	if err := r.d.applyConfig(); err != nil {
		t.Fatal(err)
	}
	if r.accepted(t, r.job(t, a)) || !r.accepted(t, r.job(t, b)) {
		t.Error("after removing key a: want b only")
	}
	if m := r.certs.check(official); m == nil || m.Code != kiosk.CodeCertUntrusted {
		t.Errorf("a certificate of the CA removed: %+v", m)
	}
	if p := r.sign.ltv(); p.tsa != nil || p.level != api.LevelBB {
		t.Errorf("after tsa_url was emptied: %+v, want no authority and level B-B", p)
	}
	if r.level.Level() != slog.LevelError {
		t.Errorf("log level %v, want error", r.level.Level())
	}
	if logs := r.logs.String(); !strings.Contains(logs, "keys_removed=["+r.keys[a].KID()+"]") {
		t.Errorf("the key removed is not logged:\n%s", logs)
	}
}

// A file that does not load is refused whole: no part of it applies, not
// even the parts that would load.
func TestReloadRefusesABadFileWhole(t *testing.T) {
	r := newReloadRig(t)
	a := r.cfg.Dispatcher.KeyFiles[0]
	b := r.newKey(t, "b.pub")
	before := r.d.trust.p.Load()
	for name, adjust := range map[string]func(*Config){
		"missing key file": func(c *Config) {
			c.Dispatcher.KeyFiles = []string{a, b, filepath.Join(t.TempDir(), "gone.pub")}
			c.LogLevel = "debug"
		},
		"invalid field": func(c *Config) {
			c.Dispatcher.KeyFiles = []string{a, b}
			c.Store.Retention = Duration(time.Minute)
			c.LogLevel = "debug"
		},
		"CA file that is no CA": func(c *Config) {
			c.Dispatcher.KeyFiles = []string{a, b}
			c.Signing.SignerCAFiles = []string{b}
		},
	} {
		saved := r.cfg
		r.write(t, adjust)
		if err := r.d.applyConfig(); err == nil {
			t.Errorf("%s: reloaded", name)
		}
		r.cfg = saved
		if r.d.trust.p.Load() != before || r.level.Level() != slog.LevelInfo || r.accepted(t, r.job(t, b)) {
			t.Errorf("%s: something of the refused file applied", name)
		}
	}
	if err := os.WriteFile(r.path, []byte("terminal_id = \"kendari-setda-01\"\n[broker\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.d.applyConfig(); err == nil || r.d.trust.p.Load() != before {
		t.Errorf("a file that does not parse: %v", err)
	}
}

func TestReloadNamesWhatNeedsARestart(t *testing.T) {
	r := newReloadRig(t)
	r.write(t, func(c *Config) {
		c.TerminalID = "kendari-setda-02"
		c.Broker.URLs = []string{"tcp://127.0.0.1:1884"}
		c.Kiosk.Listen = "127.0.0.1:8471"
	})
	if err := r.d.applyConfig(); err != nil {
		t.Fatal(err)
	}
	logs := r.logs.String()
	for _, f := range []string{"terminal_id", "broker.urls", "kiosk.listen"} {
		if !strings.Contains(logs, f+" changed; restart tekend to apply") {
			t.Errorf("%s not named as needing a restart:\n%s", f, logs)
		}
	}
	if strings.Contains(logs, "dispatcher.key_files changed") {
		t.Errorf("a reloadable field named as needing a restart:\n%s", logs)
	}
	// The terminal is still the one it started as.
	if v, _ := verifierOf(r.d.trust); v.Terminal != "kendari-setda-01" {
		t.Errorf("verifier for terminal %q", v.Terminal)
	}
	// Without a level to set, log_level needs a restart too.
	r.d.opts.LogLevel = nil
	r.write(t, func(c *Config) { c.LogLevel = "debug" })
	if err := r.d.applyConfig(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.logs.String(), "log_level changed; restart tekend to apply") {
		t.Error("log_level not named as needing a restart without a LevelVar")
	}
}

// Envelopes and certificates are checked while reloads swap the trust: each
// check sees one trust whole (run with -race).
func TestReloadWhileVerifying(t *testing.T) {
	r := newReloadRig(t)
	a := r.cfg.Dispatcher.KeyFiles[0]
	b := r.newKey(t, "b.pub")
	ca := testenv.NewCA(t, "Signer CA")
	official := ca.Client(t, "Siti Rahmawati").TLS.Leaf
	envA, envB := r.job(t, a), r.job(t, b)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				r.accepted(t, envA)
				r.accepted(t, envB)
				_ = r.certs.check(official)
				_ = r.sign.ltv()
				if _, err := (envelopes{r.d.trust}).open(queue.Job{ID: "j", Envelope: envA, ReceivedAt: time.Now()}); err != nil && !errors.Is(err, &api.RefusalError{Reason: api.ReasonUnknownKID}) {
					t.Errorf("open: %v", err)
				}
			}
		})
	}
	for i := range 20 {
		r.write(t, func(c *Config) {
			c.Dispatcher.KeyFiles = [][]string{{a}, {b}}[i%2]
			c.Signing.SignerCAFiles = [][]string{nil, {ca.CertFile}}[i%2]
			c.Signing.TSAURL = []string{"", "http://127.0.0.1:9/tsa"}[i%2]
		})
		if err := r.d.applyConfig(); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	wg.Wait()
}
