package daemon

import (
	"testing"
	"time"
)

// SetBrokerAnswerTimeout gives the broker d to answer in the tekend the test
// starts next, instead of ten seconds, so a test can freeze it briefly. It
// must be called before tekend starts; it is undone when the test ends.
func SetBrokerAnswerTimeout(t testing.TB, d time.Duration) {
	t.Helper()
	old := brokerAnswerTimeout
	brokerAnswerTimeout = d
	t.Cleanup(func() { brokerAnswerTimeout = old })
}
