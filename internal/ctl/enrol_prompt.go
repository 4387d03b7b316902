package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Prompter asks the operator at the enrolment desk. Secrets come back as
// bytes the caller zeroes; a Prompter never echoes or keeps them.
type Prompter interface {
	// Ask shows question and returns the answer line, without its line end.
	Ask(ctx context.Context, question string) (string, error)
	// AskSecret shows question and reads an answer that is not echoed.
	AskSecret(ctx context.Context, question string) ([]byte, error)
}

// ErrNoAnswer means the input ended before the operator answered.
var ErrNoAnswer = errors.New("no answer: input ended")

// maxAnswer bounds one answer line; a PIN is at most 8 bytes, a name 64
// characters.
const maxAnswer = 1024

// LinePrompter asks on Out and reads answers, secrets too, line by line
// from In. It is for input that is not a terminal; on a terminal, secrets
// must be read without echo (see tekenctl's terminal prompter).
type LinePrompter struct {
	In  io.Reader
	Out io.Writer
}

var _ Prompter = LinePrompter{}

// Ask implements Prompter.
func (p LinePrompter) Ask(ctx context.Context, question string) (string, error) {
	b, err := p.AskSecret(ctx, question)
	s := string(b)
	clear(b)
	return s, err
}

// AskSecret implements Prompter.
func (p LinePrompter) AskSecret(ctx context.Context, question string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fmt.Fprint(p.Out, question)
	return ReadLine(p.In)
}

// ReadLine reads one line from r a byte at a time, so that nothing after
// the line is consumed (a terminal prompter reads the next answer from the
// same descriptor), and strips the line end (\n or \r\n).
func ReadLine(r io.Reader) ([]byte, error) {
	var line []byte
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				return bytes.TrimSuffix(line, []byte{'\r'}), nil
			}
			if len(line) >= maxAnswer {
				clear(line)
				return nil, fmt.Errorf("answer longer than %d bytes", maxAnswer)
			}
			line = append(line, b[0])
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				return bytes.TrimSuffix(line, []byte{'\r'}), nil
			}
			return nil, ErrNoAnswer
		}
		if err != nil {
			clear(line)
			return nil, fmt.Errorf("read answer: %w", err)
		}
	}
}

// ReadSecretFile reads a PIN or PUK from the first line of a file (its
// line end stripped). The operator makes the file with mode 0600, or hands
// it over by process substitution, which leaves nothing on disk:
// --new-pin-file <(pass show teken/siti-pin). A file that others may read
// is refused.
func ReadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o: others could read the secret (chmod 600 it)", path, fi.Mode().Perm())
	}
	line, err := ReadLine(f)
	if errors.Is(err, ErrNoAnswer) {
		return nil, fmt.Errorf("%s is empty", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return line, nil
}

// Secret kinds, for messages.
const (
	kindPIN = "PIN"
	kindPUK = "PUK"
)

// checkNewSecret applies the rules for a new PIN or PUK: 6 to 8 letters or
// digits (what the kiosk accepts, and the YubiKey's lengths), not the
// factory value.
func checkNewSecret(kind string, v, factory []byte) error {
	if len(v) < 6 || len(v) > 8 {
		return fmt.Errorf("new %s: want 6 to 8 letters or digits, got %d characters", kind, len(v))
	}
	for _, c := range v {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return fmt.Errorf("new %s: want letters and digits only", kind)
		}
	}
	if bytes.Equal(v, factory) {
		return fmt.Errorf("new %s: that is the factory default", kind)
	}
	return nil
}

// newSecretTries bounds how often the operator may mistype a new secret
// (which costs nothing on the card) before enrolment gives up.
const newSecretTries = 3

// askNewSecret asks for a new PIN or PUK twice until both agree and the
// value passes checkNewSecret; avoid is a value it must differ from (the
// new PIN, for the PUK), or nil.
func askNewSecret(ctx context.Context, p Prompter, out io.Writer, kind string, factory, avoid []byte) ([]byte, error) {
	for range newSecretTries {
		first, err := p.AskSecret(ctx, fmt.Sprintf("New %s (6 to 8 letters or digits): ", kind))
		if err != nil {
			return nil, fmt.Errorf("new %s: %w", kind, err)
		}
		if err := checkNewSecret(kind, first, factory); err != nil {
			clear(first)
			fmt.Fprintf(out, "%v. Again.\n", err)
			continue
		}
		if avoid != nil && bytes.Equal(first, avoid) {
			clear(first)
			fmt.Fprintf(out, "The %s must differ from the PIN. Again.\n", kind)
			continue
		}
		second, err := p.AskSecret(ctx, fmt.Sprintf("New %s again: ", kind))
		if err != nil {
			clear(first)
			return nil, fmt.Errorf("new %s: %w", kind, err)
		}
		same := bytes.Equal(first, second)
		clear(second)
		if same {
			return first, nil
		}
		clear(first)
		fmt.Fprintf(out, "The two %ss differ. Again.\n", kind)
	}
	return nil, fmt.Errorf("new %s: not given after %d tries", kind, newSecretTries)
}
