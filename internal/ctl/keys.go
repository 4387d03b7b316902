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
	KeyFile   string // PKCS#8 PEM, mode 0600
	PubFile   string // PKIX PEM, for the terminals' [dispatcher] key_files
}

// Keygen makes a dispatcher key pair and writes PREFIX.key and PREFIX.pub.
// alg is ES256 or Ed25519 (EdDSA). It refuses to overwrite a key.
func Keygen(alg, prefix string) (KeyPair, error) {
	switch strings.ToLower(alg) {
	case "", "es256", "p256", "p-256":
		alg = api.AlgES256
	case "ed25519", "eddsa":
		alg = api.AlgEdDSA
	default:
		return KeyPair{}, fmt.Errorf("algorithm %q: want ES256 or Ed25519", alg)
	}
	if prefix == "" {
		return KeyPair{}, errors.New("no output prefix")
	}
	kp := KeyPair{Algorithm: alg, KeyFile: prefix + ".key", PubFile: prefix + ".pub"}
	for _, p := range []string{kp.KeyFile, kp.PubFile} {
		if _, err := os.Stat(p); err == nil {
			return KeyPair{}, fmt.Errorf("%s exists: refusing to overwrite a key", p)
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
	if d := filepath.Dir(prefix); d != "" {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return KeyPair{}, fmt.Errorf("keygen: %w", err)
		}
	}
	// O_EXCL: two keygens racing for one prefix must not both win.
	if err := writeNew(kp.KeyFile, priv, 0o600); err != nil {
		return KeyPair{}, err
	}
	if err := writeNew(kp.PubFile, pub, 0o644); err != nil {
		_ = os.Remove(kp.KeyFile)
		return KeyPair{}, err
	}
	return kp, nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
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
