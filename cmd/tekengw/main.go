// Command tekengw is the Teken gateway: the central side as a service, for
// letter systems that submit letters over HTTP and take results by webhook
// (docs/GATEWAY.md).
//
//	tekengw [-config /etc/teken/tekengw.toml]   run
//	tekengw check-config [-config …]            check the configuration and exit
//	tekengw key                                 print a new API key and the hash its client's configuration holds
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/tekenid/teken/gateway"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && (args[0] == "check-config" || args[0] == "key" || args[0] == "run") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("tekengw "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", gateway.DefaultConfigPath, "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch cmd {
	case "key":
		key, hash := gateway.NewAPIKey()
		fmt.Fprintf(stdout, "key:        %s\nkey_sha256: %s\n", key, hash)
		fmt.Fprintln(stderr, "Give the key to the letter system; put key_sha256 in its [[clients]] entry. The key is not shown again.")
		return 0
	case "check-config":
		if _, err := gateway.LoadConfig(*configPath); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok\n", *configPath)
		return 0
	}
	cfg, err := gateway.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := slog.New(gateway.LogHandler(stderr, cfg.LogLevel))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := gateway.OpenStore(ctx, cfg)
	if err != nil {
		log.Error("open the store", "err", err)
		return 1
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: log, Store: st, Ready: func(addr string) {
		_, _ = daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS=serving on "+addr)
	}})
	if err != nil {
		_ = st.Close()
		log.Error("start", "err", err)
		return 1
	}
	err = g.Run(ctx)
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	if cerr := st.Close(); cerr != nil {
		log.Error("close the store", "err", cerr)
	}
	if err != nil {
		log.Error("tekengw stopped", "err", err)
		return 1
	}
	log.Info("tekengw stopped")
	return 0
}
