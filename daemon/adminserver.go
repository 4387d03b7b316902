package daemon

import (
	"context"

	"github.com/tekenid/teken/daemon/admin"
)

// openAdmin opens the admin socket of `tekend backup` (daemon/admin) at
// Options.AdminSocket, when set, and has Close close it before the store.
// A socket that cannot be opened is logged and tekend runs without it:
// signing does not need it, and `tekend backup` then says that no tekend
// answers.
func (d *Daemon) openAdmin() {
	if d.opts.AdminSocket == "" {
		return
	}
	srv, err := admin.Listen(d.opts.AdminSocket, admin.ServerOptions{Store: d.store, Logger: d.log})
	if err != nil {
		d.log.Error("no admin socket: tekend backup cannot reach this tekend", "err", err)
		return
	}
	d.admin = srv
	d.onClose(srv.Close)
}

// serveAdmin answers on the admin socket until ctx ends. A socket that
// fails is logged, not a reason to stop signing.
func (d *Daemon) serveAdmin(ctx context.Context) error {
	if d.admin == nil {
		return nil
	}
	if err := d.admin.Serve(ctx); err != nil {
		d.log.Error("admin socket failed: tekend backup cannot reach this tekend", "err", err)
	}
	return nil
}
