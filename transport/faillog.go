package transport

import "log/slog"

// failureLog logs a failure that repeats on change, not per retry: the
// first time, and when its text changes; and, when it ends, how many times
// it happened. A broker that is down for an hour is then two lines, not
// a thousand.
type failureLog struct {
	msg   string // what failed, e.g. "mqtt connect failed"
	last  string // the error text now failing, or ""
	times int
}

// failed records one failed attempt.
func (f *failureLog) failed(log *slog.Logger, err error, args ...any) {
	if text := err.Error(); text != f.last {
		if f.times > 1 {
			log.Warn(f.msg+": earlier error repeated", "err", f.last, "times", f.times)
		}
		f.last, f.times = text, 1
		log.Warn(f.msg, append(args, "err", err)...)
		return
	}
	f.times++
	log.Debug(f.msg, append(args, "err", err, "times", f.times)...)
}

// succeeded ends a run of failures.
func (f *failureLog) succeeded(log *slog.Logger, what string) {
	if f.times == 0 {
		return
	}
	log.Info(what, "after_failures", f.times, "last_err", f.last)
	f.last, f.times = "", 0
}
