package admin

import "time"

// SetClientIdle sets how long the client waits for the server, until the
// test ends.
func SetClientIdle(t interface{ Cleanup(func()) }, d time.Duration) {
	old := clientIdle
	clientIdle = d
	t.Cleanup(func() { clientIdle = old })
}
