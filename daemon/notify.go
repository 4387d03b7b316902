package daemon

import (
	"log/slog"
	"strconv"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// notifier speaks the sd_notify protocol when tekend runs under systemd
// (Type=notify); outside systemd every call is a no-op.
type notifier struct {
	log *slog.Logger
}

func (n notifier) send(lines ...string) {
	// unsetEnvironment=false: a restarted main loop must still reach systemd.
	if _, err := sd.SdNotify(false, strings.Join(lines, "\n")); err != nil {
		n.log.Warn("systemd notify failed", "err", err)
	}
}

// Ready says the store is open, the configuration valid and the broker loop
// started.
func (n notifier) Ready(status string) { n.send(sd.SdNotifyReady, "STATUS="+status) }

// Status tells systemd, and so `systemctl status`, what the terminal is doing.
func (n notifier) Status(status string) { n.send("STATUS=" + status) }

// Watchdog pets the watchdog. Only the main loop calls it, after the loop
// and the store have answered, so a wedged daemon is restarted.
func (n notifier) Watchdog() { n.send(sd.SdNotifyWatchdog) }

// Reloading says a reload of the configuration has begun; the Ready that
// ends it says tekend runs again, with the new configuration or, refused,
// the old (sd_notify(3)). MONOTONIC_USEC is what Type=notify-reload asks
// for besides; plain Type=notify ignores it.
func (n notifier) Reloading() {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	n.send(sd.SdNotifyReloading, "MONOTONIC_USEC="+strconv.FormatInt(ts.Nano()/1000, 10))
}

// Stopping says shutdown has begun.
func (n notifier) Stopping(status string) { n.send(sd.SdNotifyStopping, "STATUS="+status) }

// watchdogPeriod is how often the main loop must pet the watchdog: half of
// WatchdogSec, as sd_watchdog_enabled(3) recommends; zero when disabled.
func watchdogPeriod() time.Duration {
	d, err := sd.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0
	}
	return d / 2
}
