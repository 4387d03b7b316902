// Package version reports the build's version, stamped at link time with
// -ldflags "-X github.com/tekenid/teken/internal/version.Version=…" and
// otherwise read from the module build information.
package version

import (
	"runtime/debug"
	"strings"
)

// Version is set by the linker; empty means "not stamped".
var Version string

// String returns the stamped version, or the module version and VCS revision
// recorded by the Go toolchain, or "devel" when neither is known.
func String() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := info.Main.Version
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v = strings.TrimSuffix(v, "+dirty") + "+" + rev + dirty
	}
	return v
}
