package transport

import (
	"os"
	"testing"

	"github.com/tekenid/teken/internal/testenv"
)

// TestMain stops the brokers the contract tests share
// (testenv.ForEachSharedBroker) once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopSharedBrokers()
	os.Exit(code)
}
