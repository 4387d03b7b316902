package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"syscall"
	"time"
)

// ErrNotRunning means no tekend answers on the admin socket: the socket
// is missing (systemd removes its directory when tekend stops) or nobody
// listens on it.
var ErrNotRunning = errors.New("no tekend answers on the admin socket")

// Backup asks the tekend listening on socketPath for a consistent copy of
// its store and writes it to w; it returns the bytes written. It fails if
// the copy did not arrive whole, and then what w holds is no backup.
// ctx bounds the whole exchange. An error is ErrNotRunning when no tekend
// answers, matches ErrRefused when tekend will not serve this user, and
// is a *ServerError for any other answer of tekend's.
func Backup(ctx context.Context, socketPath string, w io.Writer) (int64, error) {
	c, err := dial(ctx, socketPath)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	n, err := backup(c, w)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return n, fmt.Errorf("backup from %s: %w", socketPath, err)
	}
	return n, nil
}

// backup is one backup exchange on c.
func backup(c net.Conn, w io.Writer) (int64, error) {
	r := bufio.NewReaderSize(idleReader{c: c, idle: clientIdle}, 64<<10)
	if _, err := io.WriteString(c, formatRequest(cmdBackup)); err != nil {
		// A server that refuses this peer answers before it reads the
		// request, and may have closed already: its answer says why.
		var se *ServerError
		if aerr := readAnswer(r, "ok"); errors.As(aerr, &se) {
			return 0, aerr
		}
		return 0, fmt.Errorf("send request: %w", err)
	}
	return readBackup(r, w)
}

// clientIdle bounds each wait of the client for the server: a tekend that
// stops sending (wedged, or its store blocked) fails the backup instead of
// holding a backup job forever. tekend sends without pause while it copies,
// so it is generous. A variable for the tests alone.
var clientIdle = time.Minute

// idleReader gives each read from c idle to bring something.
type idleReader struct {
	c    net.Conn
	idle time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	if err := r.c.SetReadDeadline(time.Now().Add(r.idle)); err != nil {
		return 0, err
	}
	return r.c.Read(p)
}

// readBackup reads the answer to a backup request — header, chunks,
// trailer — and copies the file it carries to w.
func readBackup(r *bufio.Reader, w io.Writer) (int64, error) {
	if err := readAnswer(r, "ok"); err != nil {
		return 0, err
	}
	n, err := io.Copy(w, &chunkReader{r: r})
	if err != nil {
		return n, err
	}
	line, err := readLine(r)
	if err != nil {
		return n, fmt.Errorf("read trailer: %w", unexpected(err))
	}
	size, err := parseAnswer(line, "done")
	if err != nil {
		return n, err
	}
	if size != n {
		return n, fmt.Errorf("%w: received %d bytes, tekend sent %d", ErrProtocol, n, size)
	}
	return n, nil
}

// readAnswer reads the header line.
func readAnswer(r *bufio.Reader, word string) error {
	line, err := readLine(r)
	if err != nil {
		return fmt.Errorf("read answer: %w", unexpected(err))
	}
	_, err = parseAnswer(line, word)
	return err
}

// dial connects to the socket, telling a tekend that is not running from
// one the caller may not reach.
func dial(ctx context.Context, path string) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	switch {
	case err == nil:
		return c.(*net.UnixConn), nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("%w at %s (is tekend running? systemctl status tekend): %w", ErrNotRunning, path, cause(err))
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("admin socket %s: %w: run as root or as tekend's user (teken)", path, cause(err))
	}
	return nil, fmt.Errorf("admin socket %s: %w", path, cause(err))
}

// cause is what failed inside a *net.OpError, whose text repeats the path.
func cause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
