package main

import (
	"flag"
	"io"
	"os"
	"strings"

	"github.com/tekenid/teken/internal/ctl"
)

// settingsFlags are the broker and key flags several commands share; each
// overrides its environment variable, which overrides the config file.
type settingsFlags struct {
	config                       string
	broker                       string
	ca, cert, key                string
	dispatcherKey, root          string
	signerCA, terminal, username string
	maxMessageBytes              int
}

// envHelp is appended to the help of every command that reads settings.
const envHelp = `
Settings come from flags, then the environment (TEKEN_BROKER, TEKEN_CA,
TEKEN_CERT, TEKEN_KEY, TEKEN_DISPATCHER_KEY, TEKEN_ROOT, TEKEN_SIGNER_CA,
TEKEN_TERMINAL, TEKEN_USERNAME, TEKEN_PASSWORD, TEKEN_MAX_MESSAGE_BYTES), then the config file
(TEKEN_CONFIG or ~/.config/teken/tekenctl.toml), in that order.
`

func addSettingsFlags(fs *flag.FlagSet, dispatcher bool) *settingsFlags {
	s := &settingsFlags{}
	fs.StringVar(&s.config, "config", "", "config `FILE` (TOML; default $TEKEN_CONFIG or ~/.config/teken/tekenctl.toml)")
	fs.StringVar(&s.broker, "broker", "", "broker `URLs`, comma-separated, e.g. ssl://broker:8883 (TEKEN_BROKER)")
	fs.StringVar(&s.ca, "ca", "", "CA `FILE` the broker's TLS certificate chains to (TEKEN_CA)")
	fs.StringVar(&s.cert, "cert", "", "client certificate `FILE` for the broker (TEKEN_CERT)")
	fs.StringVar(&s.key, "key", "", "client key `FILE` for the broker (TEKEN_KEY)")
	fs.StringVar(&s.root, "root", "", "topic `ROOT` (TEKEN_ROOT; default teken/v1)")
	fs.StringVar(&s.username, "username", "", "broker user `NAME` (TEKEN_USERNAME; password from TEKEN_PASSWORD)")
	if dispatcher {
		fs.StringVar(&s.dispatcherKey, "dispatcher-key", "", "dispatcher private key `FILE` (TEKEN_DISPATCHER_KEY)")
		fs.IntVar(&s.maxMessageBytes, "max-message-bytes", 0, "the broker's message size limit in `BYTES`: a larger job is refused before publishing (TEKEN_MAX_MESSAGE_BYTES; default 50331648)")
	}
	return s
}

// load reads the config file and environment and lays the flags over them.
func (s *settingsFlags) load(e env) (ctl.Settings, error) {
	st, err := ctl.Load(e.getenv, s.config)
	if err != nil {
		return ctl.Settings{}, err
	}
	var brokers []string
	for _, b := range strings.Split(s.broker, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	st.Override(ctl.Settings{Brokers: brokers, CA: s.ca, Cert: s.cert, Key: s.key,
		DispatcherKey: s.dispatcherKey, Root: s.root, SignerCA: s.signerCA,
		Terminal: s.terminal, Username: s.username, MaxMessageBytes: s.maxMessageBytes})
	st.Logger = e.log
	return st, nil
}

// isTerminal reports whether w is a terminal, for progress and tables.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
