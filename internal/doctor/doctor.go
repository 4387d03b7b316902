package doctor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/admin"
)

// Health is how one check ended.
type Health int

// The outcomes of a check, from best to worst. Only HealthFail makes
// Run fail.
const (
	HealthOK Health = iota
	HealthWarn
	HealthFail
)

// String is the outcome as tekenctl doctor prints it.
func (v Health) String() string {
	switch v {
	case HealthOK:
		return "ok"
	case HealthWarn:
		return "warn"
	}
	return "fail"
}

// Finding is one line of tekenctl doctor: the outcome for one thing, what was
// found and, unless it is fine, what to do about it.
type Finding struct {
	Health Health
	What   string // the thing checked: "configuration", "broker ssl://…"
	Detail string
	Fix    string // empty when there is nothing to do
}

// String is the finding on one line: `ok|warn|fail  <what>: <detail> — <fix>`.
func (f Finding) String() string {
	s := fmt.Sprintf("%-4s  %s: %s", f.Health, oneLine(f.What), oneLine(f.Detail))
	if f.Fix != "" {
		s += " — " + oneLine(f.Fix)
	}
	return s
}

// oneLine keeps a finding on its line whatever an error quoted.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.NewReplacer("\n", "; ").Replace(s)), " ")
}

// DefaultServiceUser is the user the packaged service runs as
// (systemd/tekend.service User=teken).
const DefaultServiceUser = "teken"

// Options configure Run. The zero value checks the packaged
// terminal.
type Options struct {
	// ConfigPath is tekend's configuration; "" means
	// daemon.DefaultConfigPath.
	ConfigPath string
	// ServiceUser is the user tekend runs as: it must own data_dir and be
	// able to read every file the configuration names. "" means
	// DefaultServiceUser.
	ServiceUser string
	// Timeout bounds each probe that waits on another process or the
	// network (pcscd, the broker, the TSA, tekend); 0 means 10 seconds.
	Timeout time.Duration
	// AdminSocket is tekend's admin socket, which gives a hot backup of
	// the store while tekend runs; "" means admin.DefaultSocket.
	AdminSocket string
	// Now is the terminal's clock, compared with the TSA's; nil means
	// time.Now.
	Now func() time.Time
	// Logger receives the broker connections' log; nil discards it.
	Logger *slog.Logger
	// Report receives every finding as soon as it is known; nil drops
	// them.
	Report func(Finding)
}

// Run checks a terminal as IT would by hand: tekend's configuration
// (tekend check-config --strict) and the permissions of the files it
// names, data_dir and its disk, pcscd, the readers and any token present,
// each broker with the terminal's own TLS and credentials (under a client
// id of its own, so that tekend's session is never taken over), the clock
// against the timestamp authority's, the store (read-only while tekend is
// stopped, a hot backup over its admin socket while it runs), and whether
// tekend runs and is ready. It reports every finding and returns true when
// any failed; warnings alone do not fail.
func Run(ctx context.Context, o Options) (failed bool) {
	d := newCheckup(o)
	d.configuration()
	if d.check.Parsed {
		d.files()
		d.dataDir()
		d.disk()
	}
	d.tokens(ctx)
	if d.check.Parsed {
		d.brokers(ctx)
		d.clock(ctx)
		d.store(ctx)
		d.tekend(ctx)
	}
	return d.failed
}

// checkup is one run of Run.
type checkup struct {
	o      Options
	check  *daemon.ConfigCheck
	cfg    daemon.Config // check.Config; zero unless check.Parsed
	failed bool
}

func newCheckup(o Options) *checkup {
	d := &checkup{o: o, check: &daemon.ConfigCheck{}}
	if d.o.ConfigPath == "" {
		d.o.ConfigPath = daemon.DefaultConfigPath
	}
	if d.o.ServiceUser == "" {
		d.o.ServiceUser = DefaultServiceUser
	}
	if d.o.Timeout <= 0 {
		d.o.Timeout = 10 * time.Second
	}
	if d.o.AdminSocket == "" {
		d.o.AdminSocket = admin.DefaultSocket
	}
	if d.o.Now == nil {
		d.o.Now = time.Now
	}
	if d.o.Logger == nil {
		d.o.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}

func (d *checkup) report(v Health, what, detail, fix string) {
	if v == HealthFail {
		d.failed = true
	}
	if v == HealthOK {
		fix = ""
	}
	if d.o.Report != nil {
		d.o.Report(Finding{Health: v, What: what, Detail: detail, Fix: fix})
	}
}

// configuration is tekend check-config --strict, one finding per problem.
func (d *checkup) configuration() {
	path := d.o.ConfigPath
	d.check = daemon.CheckConfigFile(path)
	d.cfg = d.check.Config
	for _, err := range d.check.Errors {
		fix := "fix it in " + path + ", then check with: tekend check-config --strict"
		if !d.check.Parsed {
			fix = "give tekend a configuration it can read (" + path + "); the checks that need it are skipped"
		}
		d.report(HealthFail, "configuration", err.Error(), fix)
	}
	for _, w := range d.check.Warnings {
		d.report(HealthWarn, "configuration", w.Error(), "change it in "+path+" (tekend check-config --strict fails until then)")
	}
	if len(d.check.Errors) == 0 && len(d.check.Warnings) == 0 {
		d.report(HealthOK, "configuration", path+" passes tekend check-config --strict", "")
	}
}

// account is the service user as the kernel checks file access.
type account struct {
	name     string
	uid, gid uint32
	groups   map[uint32]bool // primary and supplementary
}

func lookupAccount(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	a := &account{name: name, uid: uint32(uid), gid: uint32(gid), groups: map[uint32]bool{uint32(gid): true}}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("user %s: groups: %w", name, err)
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			a.groups[uint32(n)] = true
		}
	}
	return a, nil
}

// may says whether a has the permission bit (4 read, 2 write, 1 search)
// on a file with st, by the classic owner/group/other rule (POSIX ACLs
// are not read: Teken's packaging sets none). Root may read and search
// anything.
func (a *account) may(st *syscall.Stat_t, bit uint32) bool {
	switch {
	case a.uid == 0:
		return true
	case st.Uid == a.uid:
		return st.Mode&(bit<<6) != 0
	case a.groups[st.Gid]:
		return st.Mode&(bit<<3) != 0
	}
	return st.Mode&bit != 0
}

// canRead says why a cannot read path (every directory above it must be
// searchable too) and what to do, or "" when it can.
func (a *account) canRead(path string) (why, fix string, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", "", err
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		st, err := statT(dir)
		if err != nil {
			return "", "", err
		}
		if !a.may(st, 1) {
			return fmt.Sprintf("cannot enter %s (%s)", dir, describe(st)), "sudo chmod a+x " + dir, nil
		}
		if dir == "/" {
			break
		}
	}
	st, err := statT(abs)
	if err != nil {
		return "", "", err
	}
	if !a.may(st, 4) {
		return fmt.Sprintf("cannot read it (%s)", describe(st)),
			fmt.Sprintf("sudo chgrp %s %s && sudo chmod g+r %s", groupName(a.gid), abs, abs), nil
	}
	return "", "", nil
}

func statT(path string) (*syscall.Stat_t, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("%s: no owner information", path)
	}
	return st, nil
}

// describe is a file's mode and owner as ls shows them: "0640 root:teken".
func describe(st *syscall.Stat_t) string {
	return fmt.Sprintf("%04o %s:%s", st.Mode&0o7777, userName(st.Uid), groupName(st.Gid))
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return strconv.FormatUint(uint64(uid), 10)
}

func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		return g.Name
	}
	return strconv.FormatUint(uint64(gid), 10)
}

// namedFile is a file the configuration names, and whether it is a secret.
type namedFile struct {
	field, path string
	secret      bool
}

func (d *checkup) namedFiles() []namedFile {
	c := d.cfg
	files := []namedFile{{"configuration", d.o.ConfigPath, false}}
	for _, f := range c.Dispatcher.KeyFiles {
		files = append(files, namedFile{"dispatcher.key_files", f, false})
	}
	for _, f := range c.Signing.SignerCAFiles {
		files = append(files, namedFile{"signing.signer_ca_files", f, false})
	}
	for _, f := range []namedFile{
		{"broker.ca_file", c.Broker.CAFile, false}, {"broker.cert_file", c.Broker.CertFile, false},
		{"broker.key_file", c.Broker.KeyFile, true}, {"broker.password_file", c.Broker.PasswordFile, true},
		{"metrics.web_config", c.Metrics.WebConfig, true}, // holds password hashes and key paths
	} {
		if f.path != "" {
			files = append(files, f)
		}
	}
	return files
}

// files checks that the service user can read every file the
// configuration names, that no one else can change one, and that no one
// else can read a secret. A file that is missing is the configuration's
// finding already.
func (d *checkup) files() {
	acct, err := lookupAccount(d.o.ServiceUser)
	if err != nil {
		d.report(HealthFail, "files", fmt.Sprintf("service user %s: %v", d.o.ServiceUser, err),
			"install the package (it creates the user), or name tekend's user with --user")
		return
	}
	files := d.namedFiles()
	bad := false
	for _, f := range files {
		what := "files " + f.field
		st, err := statT(f.path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			d.report(HealthFail, what, err.Error(), "run tekenctl doctor as root to check every file")
			bad = true
			continue
		}
		why, fix, err := acct.canRead(f.path)
		switch {
		case err != nil:
			d.report(HealthFail, what, err.Error(), "run tekenctl doctor as root to check every file")
			bad = true
		case why != "":
			d.report(HealthFail, what, fmt.Sprintf("%s: user %s %s", f.path, acct.name, why), fix)
			bad = true
		case st.Mode&0o002 != 0:
			d.report(HealthFail, what, fmt.Sprintf("%s: anyone may change it (%s)", f.path, describe(st)),
				"sudo chmod o-w "+f.path)
			bad = true
		case f.secret && st.Mode&0o004 != 0:
			d.report(HealthWarn, what, fmt.Sprintf("%s: a secret every user may read (%s)", f.path, describe(st)),
				fmt.Sprintf("sudo chown root:%s %s && sudo chmod 0640 %s", groupName(acct.gid), f.path, f.path))
			bad = true
		}
	}
	if !bad {
		d.report(HealthOK, "files", fmt.Sprintf("%d files the configuration names: user %s reads them, no one else may change them or read a secret", len(files), acct.name), "")
	}
}
