package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/admin"
	"github.com/tekenid/teken/queue"
)

// dataDir checks data_dir and the store file as the packaging makes them
// (systemd/teken.tmpfiles, tekend.service StateDirectoryMode, the store's
// own 0600): owned by the service user, and closed to everyone else, since
// they hold the letters and the audit log.
func (d *checkup) dataDir() {
	dir := d.cfg.DataDir
	what := "data_dir " + dir
	fi, err := os.Stat(dir)
	switch {
	case os.IsNotExist(err):
		d.report(HealthWarn, what, "does not exist", "the package makes it (sudo systemd-tmpfiles --create teken.conf) and tekend makes it when it starts")
		return
	case err != nil:
		d.report(HealthFail, what, err.Error(), "run tekenctl doctor as root")
		return
	case !fi.IsDir():
		d.report(HealthFail, what, "not a directory", "move it away; tekend keeps its store in this directory")
		return
	}
	acct, err := lookupAccount(d.o.ServiceUser)
	if err != nil {
		d.report(HealthFail, what, fmt.Sprintf("service user %s: %v", d.o.ServiceUser, err), "install the package (it creates the user), or name tekend's user with --user")
		return
	}
	var problems, fixes []string
	check := func(path string, want os.FileMode) {
		st, err := statT(path)
		if os.IsNotExist(err) {
			return
		}
		if err != nil {
			problems, fixes = append(problems, err.Error()), append(fixes, "run tekenctl doctor as root")
			return
		}
		if st.Uid != acct.uid || st.Gid != acct.gid {
			problems = append(problems, fmt.Sprintf("%s is %s, want owner %s:%s", path, describe(st), acct.name, groupName(acct.gid)))
			fixes = append(fixes, fmt.Sprintf("sudo chown %s:%s %s", acct.name, groupName(acct.gid), path))
		}
		if mode := os.FileMode(st.Mode & 0o7777); mode != want {
			problems = append(problems, fmt.Sprintf("%s has mode %04o, want %04o (the letters and the audit log are for tekend alone)", path, mode, want))
			fixes = append(fixes, fmt.Sprintf("sudo chmod %04o %s", want, path))
		}
	}
	check(dir, 0o700)
	check(daemon.StorePath(dir), 0o600)
	if len(problems) > 0 {
		d.report(HealthFail, what, strings.Join(problems, "; "), strings.Join(fixes, " && "))
		return
	}
	d.report(HealthOK, what, fmt.Sprintf("0700 %s:%s", acct.name, groupName(acct.gid)), "")
}

// Room the disk of data_dir must keep: below it the store soon refuses
// new jobs (it never loses one).
const minFreeBytes = 64 << 20

// disk checks the free space where the store grows.
func (d *checkup) disk() {
	dir := existingAncestor(d.cfg.DataDir)
	what := "disk " + dir
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		d.report(HealthFail, what, err.Error(), "check the filesystem of data_dir")
		return
	}
	free := int64(fs.Bavail) * fs.Bsize
	var size int64
	if fi, err := os.Stat(daemon.StorePath(d.cfg.DataDir)); err == nil {
		size = fi.Size()
	}
	max := d.cfg.Store.MaxSizeBytes
	detail := fmt.Sprintf("%s free; the store is %s of at most %s (store.max_size_bytes)", bytesIEC(free), bytesIEC(size), bytesIEC(max))
	switch {
	case free < minFreeBytes:
		d.report(HealthFail, what, detail, "free space on this filesystem: when it is full tekend refuses new jobs")
	case free < max-size:
		d.report(HealthWarn, what, detail+": the disk fills before the store reaches its limit", "free space, or lower store.max_size_bytes")
	default:
		d.report(HealthOK, what, detail, "")
	}
}

func existingAncestor(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			return dir
		}
		dir = filepath.Dir(dir)
	}
}

func bytesIEC(n int64) string {
	const unit = 1 << 10
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// store checks the job store: read-only when tekend is stopped; while it
// runs, tekend holds the file's lock and liveStore decides.
func (d *checkup) store(ctx context.Context) {
	path := daemon.StorePath(d.cfg.DataDir)
	what := "store " + path
	if _, err := os.Stat(path); os.IsNotExist(err) {
		d.report(HealthWarn, what, "none yet", "tekend makes it when it first starts")
		return
	}
	s, err := queue.OpenReadOnly(path, queue.Options{Timeout: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	switch {
	case errors.Is(err, queue.ErrLocked):
		d.liveStore(ctx, what)
		return
	case os.IsPermission(err):
		d.report(HealthWarn, what, "not checked: "+err.Error(), "run tekenctl doctor as root")
		return
	case err != nil:
		d.report(HealthFail, what, err.Error(), "keep the file for investigation; restore the last backup (docs/INSTALL.md) only if it cannot be repaired")
		return
	}
	defer s.Close(context.WithoutCancel(ctx))
	d.checkStore(ctx, what, s)
}

// liveStore checks the store of a running tekend, which holds the file's
// lock: it takes a hot backup over tekend's admin socket (a consistent
// copy, made in one read transaction while tekend goes on working) into a
// temporary file of this user's alone, and checks the copy as it would a
// stopped store. The copy holds letters: it is removed at once.
func (d *checkup) liveStore(ctx context.Context, what string) {
	f, err := os.CreateTemp("", "teken-doctor-*.db") // 0600
	if err != nil {
		d.report(HealthWarn, what, "tekend is running; no room for a copy to check: "+err.Error(), "free space in "+os.TempDir())
		return
	}
	defer os.Remove(f.Name())
	_, err = admin.Backup(ctx, d.o.AdminSocket, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case errors.Is(err, admin.ErrNotRunning):
		d.report(HealthWarn, what, "tekend is running; integrity checked only when it is stopped (no admin socket answers at "+d.o.AdminSocket+")",
			"to check it now: sudo systemctl stop tekend && sudo tekenctl doctor; sudo systemctl start tekend")
		return
	case errors.Is(err, admin.ErrRefused):
		d.report(HealthWarn, what, "tekend is running and refused a copy to this user: "+err.Error(), "run tekenctl doctor as root")
		return
	case err != nil:
		d.report(HealthFail, what, "tekend is running; its hot backup failed: "+err.Error(), "journalctl -u tekend -e")
		return
	}
	s, err := queue.OpenReadOnly(f.Name(), queue.Options{Timeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		d.report(HealthFail, what, "the hot backup does not open: "+err.Error(), "journalctl -u tekend -e")
		return
	}
	defer s.Close(context.WithoutCancel(ctx))
	d.checkStore(ctx, what+" (hot backup)", s)
}

// checkStore walks the audit chain and reads the store's counts.
func (d *checkup) checkStore(ctx context.Context, what string, s *queue.Store) {
	n, err := s.VerifyAudit(ctx)
	var chain *queue.ChainError
	if errors.As(err, &chain) {
		d.report(HealthFail, what, fmt.Sprintf("audit log broken at entry %d: %s (%d entries before it intact)", chain.Seq, chain.Reason, n),
			"keep the file for investigation (tekenctl audit verify on a copy) and tell IT security")
		return
	}
	if err != nil {
		d.report(HealthFail, what, err.Error(), "keep the file for investigation")
		return
	}
	st, err := s.Stats(ctx)
	if err != nil {
		d.report(HealthFail, what, err.Error(), "keep the file for investigation")
		return
	}
	detail := fmt.Sprintf("audit chain of %d entries intact; %d letters waiting, %d results undelivered; %s",
		n, st.Jobs[queue.Ready], st.Undelivered, bytesIEC(st.FileSize))
	switch {
	case st.Full:
		d.report(HealthFail, what, detail+"; full: "+st.FullCause, "free disk space or raise store.max_size_bytes: new jobs are refused")
	case st.OldestUndelivered > 24*time.Hour:
		d.report(HealthWarn, what, fmt.Sprintf("%s; the oldest undelivered result is %s old", detail, st.OldestUndelivered.Round(time.Minute)),
			"the central side has not acknowledged it: check the broker and the central system (tekenctl results --resync)")
	default:
		d.report(HealthOK, what, detail, "")
	}
}

// tekend asks the running tekend whether it is ready, on its metrics
// listener, as IT's monitoring does.
func (d *checkup) tekend(ctx context.Context) {
	addr := localAddr(d.cfg.Metrics.Listen)
	what := "tekend"
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		d.report(HealthFail, what, err.Error(), "check metrics.listen")
		return
	}
	// Loopback, never through a proxy.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			d.report(HealthFail, what, "not running: nothing answers on "+addr+" (metrics.listen)", "sudo systemctl start tekend; journalctl -u tekend -e says why it stopped")
			return
		}
		d.report(HealthFail, what, "no answer on "+addr+": "+err.Error(), "journalctl -u tekend -e")
		return
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	text := strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(body)), "\n", "; ")), " ")
	switch {
	case res.StatusCode == http.StatusOK:
		d.report(HealthOK, what, "running and ready (/readyz on "+addr+")", "")
	case res.StatusCode == http.StatusServiceUnavailable:
		d.report(HealthFail, what, "running, not ready: "+text, "see the part named; journalctl -u tekend -e")
	case res.StatusCode == http.StatusUnauthorized:
		d.report(HealthWarn, what, "running; /readyz on "+addr+" wants the credentials of metrics.web_config", "curl -u USER 127.0.0.1:…/readyz")
	case res.StatusCode == http.StatusBadRequest && strings.Contains(text, "HTTPS"):
		d.report(HealthWarn, what, "running; /readyz on "+addr+" is served with TLS (metrics.web_config), not checked", "curl --cacert CA https://…/readyz")
	default:
		d.report(HealthWarn, what, fmt.Sprintf("/readyz on %s answers %s: %s", addr, res.Status, text), "is it tekend that listens there?")
	}
}

// localAddr is where to reach a listener on this machine: a wildcard
// host is reached on loopback.
func localAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || (ip != nil && ip.IsUnspecified() && ip.To4() != nil):
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// Skew past which signing times are visibly off, short of the
// dispatcher's clock_skew that refuses jobs.
const warnSkew = 10 * time.Second

// clock compares the terminal's clock with the TSA's, from the Date header
// of its answer (RFC 9110 §6.6.1): MQTT carries no time, and the Date is
// enough for a limit of minutes without spending a timestamp. Without a
// TSA it asks the kernel whether NTP keeps the clock.
func (d *checkup) clock(ctx context.Context) {
	if d.cfg.Signing.TSAURL == "" {
		d.kernelClock()
		return
	}
	u := d.cfg.Signing.TSAURL
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		d.report(HealthWarn, "clock", err.Error(), "check signing.tsa_url")
		return
	}
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer client.CloseIdleConnections()
	t0 := d.o.Now()
	res, err := client.Do(req)
	t1 := d.o.Now()
	if err != nil {
		d.report(HealthWarn, "clock", "not checked: the TSA does not answer: "+err.Error(),
			"check signing.tsa_url and the route to it: without it signed PDFs stay B-B")
		return
	}
	res.Body.Close()
	date, err := http.ParseTime(res.Header.Get("Date"))
	if err != nil {
		d.report(HealthWarn, "clock", "not checked: the TSA's answer has no Date", "make sure NTP keeps the clock: timedatectl")
		return
	}
	// Date is whole seconds, cut off: the TSA's clock read between date
	// and date+1s while we waited from t0 to t1.
	skew := t0.Add(t1.Sub(t0) / 2).Sub(date.Add(500 * time.Millisecond))
	within := t1.Sub(t0)/2 + 500*time.Millisecond
	dir := "ahead of"
	if skew < 0 {
		skew, dir = -skew, "behind"
	}
	detail := fmt.Sprintf("%s %s the TSA's (HTTP Date of %s, ±%s)", skew.Round(100*time.Millisecond), dir, req.URL.Host, within.Round(100*time.Millisecond))
	limit := time.Duration(d.cfg.Dispatcher.ClockSkew)
	switch {
	case skew-within > limit:
		d.report(HealthFail, "clock", detail+", more than dispatcher.clock_skew ("+limit.String()+"): jobs are refused as expired or not yet valid",
			"set the clock and keep it with NTP: sudo timedatectl set-ntp true")
	case skew-within > warnSkew:
		d.report(HealthWarn, "clock", detail+": signing times are off by that much", "keep the clock with NTP: sudo timedatectl set-ntp true")
	default:
		d.report(HealthOK, "clock", detail, "")
	}
}

// kernelClock asks adjtimex(2), without changing anything, whether the
// kernel counts the clock as synchronised (NTP clears STA_UNSYNC).
func (d *checkup) kernelClock() {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	switch {
	case err != nil:
		d.report(HealthWarn, "clock", "not checked: no signing.tsa_url to compare with, and adjtimex: "+err.Error(), "make sure NTP keeps the clock: timedatectl")
	case state == unix.TIME_ERROR || tx.Status&unix.STA_UNSYNC != 0:
		d.report(HealthWarn, "clock", "not synchronised, as the kernel reports, and no signing.tsa_url to compare with",
			"keep the clock with NTP: sudo timedatectl set-ntp true")
	default:
		d.report(HealthOK, "clock", "synchronised, as the kernel reports (no signing.tsa_url to compare with)", "")
	}
}
