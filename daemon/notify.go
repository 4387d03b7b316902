package daemon

import (
	"log/slog"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
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
