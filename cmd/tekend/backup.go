package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tekenid/teken/daemon/admin"
)

const backupUsage = `Usage: tekend backup [-force] [-socket PATH] FILE

Copies the store of the running tekend (its jobs, results and audit log)
to FILE while tekend goes on working: the copy is one moment of the store,
made by tekend itself, which holds the store file locked. Run it as root or
as the teken user. FILE.tmp is written beside FILE, synced, checked (it
opens as a store and its audit chain verifies) and renamed to FILE, mode
0600; an existing FILE is replaced only with -force. tekenctl audit reads
the copy. To restore, stop tekend and put the copy in place as
/var/lib/teken/tekend.db, owned by teken, mode 0600 (tekend(8), BACKUP
AND RESTORE).
Exit 0: FILE written; 1: not written; 2: usage.

Flags:
`

// backup is tekend backup: one checked copy of the running store.
func backup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tekend backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	force := fs.Bool("force", false, "replace FILE if it exists")
	socket := fs.String("socket", admin.DefaultSocket, "the admin `socket` of the running tekend")
	fs.Usage = func() {}
	file, err := parseBackupArgs(fs, args)
	if err != nil {
		w, code := stderr, 2
		var arg argError
		switch {
		case errors.Is(err, flag.ErrHelp):
			w, code = stdout, 0
		case errors.As(err, &arg): // the flag package has told its own
			fmt.Fprintln(stderr, "tekend backup:", err)
		}
		fs.SetOutput(w)
		fmt.Fprint(w, backupUsage)
		fs.PrintDefaults()
		return code
	}
	fb, err := admin.BackupFile(ctx, *socket, file, *force)
	if err != nil {
		fmt.Fprintln(stderr, "tekend backup:", err)
		return 1
	}
	fmt.Fprintf(stdout, "tekend backup: %s written, %d bytes, audit chain of %d entries verified\n", file, fb.Bytes, fb.AuditEntries)
	return 0
}

// parseBackupArgs takes the one FILE, with the flags before or after it.
func parseBackupArgs(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		return "", argError("name the FILE to write")
	}
	file := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", argError(fmt.Sprintf("one FILE only, not also %q", fs.Arg(0)))
	}
	return file, nil
}

// argError is a wrong argument, which the flag package does not report.
type argError string

func (e argError) Error() string { return string(e) }
