package ctl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tekenid/teken/api"
)

// KeyPair is what Keygen wrote.
type KeyPair struct {
	KID       string
	Algorithm string
	KeyFile   string // PKCS#8 PEM, mode 0600, for the central side only
	PubFile   string // PKIX PEM, for the terminals' [dispatcher] key_files
}

// ErrKeyExists says Keygen found a file where it was to write one: it never
// overwrites, since a dispatcher key that is overwritten is lost, and with
// it every terminal's trust in the jobs it signs.
var ErrKeyExists = errors.New("exists: keygen never overwrites a key")

// ErrAlgorithm says Keygen was asked for an algorithm it does not make.
var ErrAlgorithm = errors.New("want ES256 or Ed25519")

// Keygen makes a dispatcher key pair and writes PREFIX.key (the private
// key, mode 0600) and PREFIX.pub; a prefix that ends in .key names the
// private key itself. alg is ES256 or Ed25519 (EdDSA). It creates no
// directory, refuses to overwrite any file, and leaves nothing behind when
// it fails.
func Keygen(alg, prefix string) (KeyPair, error) {
	switch strings.ToLower(alg) {
	case "", "es256", "p256", "p-256":
		alg = api.AlgES256
	case "ed25519", "eddsa":
		alg = api.AlgEdDSA
	default:
		return KeyPair{}, fmt.Errorf("algorithm %q: %w", alg, ErrAlgorithm)
	}
	prefix = strings.TrimSuffix(prefix, ".key")
	if prefix == "" || strings.HasSuffix(prefix, string(filepath.Separator)) {
		return KeyPair{}, fmt.Errorf("output prefix %q: want a file name such as ./dispatcher", prefix)
	}
	kp := KeyPair{Algorithm: alg, KeyFile: prefix + ".key", PubFile: prefix + ".pub"}
	if err := checkDir(filepath.Dir(prefix)); err != nil {
		return KeyPair{}, err
	}
	for _, p := range []string{kp.KeyFile, kp.PubFile} {
		if _, err := os.Lstat(p); err == nil {
			return KeyPair{}, fmt.Errorf("%s %w", p, ErrKeyExists)
		}
	}
	key, err := api.GenerateKey(alg)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate key: %w", err)
	}
	priv, err := api.MarshalPrivateKeyPEM(key)
	if err != nil {
		return KeyPair{}, err
	}
	pub, err := api.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		return KeyPair{}, err
	}
	if kp.KID, err = api.KeyID(key.Public()); err != nil {
		return KeyPair{}, err
	}
	if err := writeNew(kp.KeyFile, priv, 0o600); err != nil {
		return KeyPair{}, err
	}
	if err := writeNew(kp.PubFile, pub, 0o644); err != nil {
		_ = os.Remove(kp.KeyFile)
		return KeyPair{}, err
	}
	return kp, nil
}

// checkDir says clearly when the directory to write in is missing: keygen
// does not make it, so that a mistyped path is not quietly created to
// hold a private key.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("directory %s does not exist (keygen creates no directories)", dir)
	case err != nil:
		return fmt.Errorf("keygen: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// writeNew writes a file that must not exist yet with exactly mode, and
// removes it again when anything fails.
func writeNew(path string, data []byte, mode os.FileMode) (err error) {
	// O_EXCL: two keygens racing for one prefix must not both win, and a
	// symbolic link planted where the key goes is not followed.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s %w", path, ErrKeyExists)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write %s: %w", path, cerr)
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	// The umask may take bits away from a new file's mode, never add
	// any; set the mode exactly, then check that the file system kept it
	// (some, such as FAT, cannot keep a file private).
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if got := fi.Mode().Perm(); got != mode {
		return fmt.Errorf("write %s: the file system gives it mode %04o, not %04o", path, got, mode)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// LoadDispatcherKey reads the PEM private key that signs jobs.
func LoadDispatcherKey(path string) (*api.Signer, error) {
	if path == "" {
		return nil, errors.New("no dispatcher key: set --dispatcher-key, TEKEN_DISPATCHER_KEY or dispatcher_key in the config file")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dispatcher key: %w", err)
	}
	key, err := api.ParsePrivateKeyPEM(raw)
	if err != nil {
		return nil, fmt.Errorf("dispatcher key %s: %w", path, err)
	}
	s, err := api.NewSigner(key)
	if err != nil {
		return nil, fmt.Errorf("dispatcher key %s: %w", path, err)
	}
	return s, nil
}
