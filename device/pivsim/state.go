package pivsim

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// fileState is the on-disk form of a card. It holds private keys and the
// PIN in the clear: it is a test and demo token, and the file is 0600.
type fileState struct {
	Serial         uint32             `json:"serial"`
	Version        [3]byte            `json:"version"`
	PIN            []byte             `json:"pin"`
	PUK            []byte             `json:"puk"`
	PINRetries     int                `json:"pin_retries"`
	PINRetriesLeft int                `json:"pin_retries_left"`
	PUKRetries     int                `json:"puk_retries"`
	PUKRetriesLeft int                `json:"puk_retries_left"`
	ManagementAlg  byte               `json:"management_key_algorithm"`
	ManagementKey  []byte             `json:"management_key"`
	Keys           map[string]fileKey `json:"keys"`
	Objects        map[string][]byte  `json:"objects"`
	FormFactor     byte               `json:"form_factor,omitempty"`
	// The attestation root stands outside the card (attest.go); it is
	// kept here so the card's attestations chain to the same root for as
	// long as its state lives.
	AttestationRootKey  []byte `json:"attestation_root_pkcs8,omitempty"`
	AttestationRootCert []byte `json:"attestation_root_cert,omitempty"`
}

type fileKey struct {
	Algorithm   Algorithm   `json:"algorithm"`
	PINPolicy   PINPolicy   `json:"pin_policy"`
	TouchPolicy TouchPolicy `json:"touch_policy"`
	Imported    bool        `json:"imported"`
	PKCS8       []byte      `json:"pkcs8"`
}

// Save writes the card's state to path (mode 0600, replaced atomically)
// and from then on saves there after every change.
func (c *Card) Save(path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.saveLocked(path); err != nil {
		return err
	}
	c.path = path
	return nil
}

func (c *Card) saveLocked(path string) error {
	fs := fileState{
		Serial: c.serial, Version: c.version, PIN: c.pin, PUK: c.puk,
		PINRetries: c.pinMax, PINRetriesLeft: c.pinLeft, PUKRetries: c.pukMax, PUKRetriesLeft: c.pukLeft,
		ManagementAlg: c.mgmtAlg, ManagementKey: c.mgmtKey,
		Keys: map[string]fileKey{}, Objects: map[string][]byte{}, FormFactor: c.formFactor,
	}
	if c.root != nil {
		der, err := x509.MarshalPKCS8PrivateKey(c.root.key)
		if err != nil {
			return fmt.Errorf("save card: attestation root: %w", err)
		}
		fs.AttestationRootKey, fs.AttestationRootCert = der, c.root.cert.Raw
	}
	for slot, k := range c.keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.signer)
		if err != nil {
			return fmt.Errorf("save card: slot %x: %w", slot, err)
		}
		fs.Keys[hexByte(slot)] = fileKey{Algorithm: k.alg, PINPolicy: k.pin, TouchPolicy: k.touch, Imported: k.imported, PKCS8: der}
	}
	for tag, v := range c.objects {
		fs.Objects[strconv.FormatUint(uint64(tag), 16)] = v
	}
	b, err := json.MarshalIndent(&fs, "", "  ")
	if err != nil {
		return fmt.Errorf("save card: %w", err)
	}
	return writeAtomic(path, b)
}

// writeAtomic replaces path with b so that a crash leaves the old or the
// new state, never a torn file.
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("save card: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save card: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("save card: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save card: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save card: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save card: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Load reads a card saved by Save; the card saves back to path after every
// change.
func Load(path string) (*Card, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load card: %w", err)
	}
	var fs fileState
	if err := json.Unmarshal(b, &fs); err != nil {
		return nil, fmt.Errorf("load card %s: %w", path, err)
	}
	c, err := fromFile(&fs)
	if err != nil {
		return nil, fmt.Errorf("load card %s: %w", path, err)
	}
	c.path = path
	return c, nil
}

func fromFile(fs *fileState) (*Card, error) {
	if len(fs.PIN) != 8 || len(fs.PUK) != 8 {
		return nil, fmt.Errorf("pin or puk not 8 bytes")
	}
	if fs.PINRetries < 1 || fs.PINRetries > 15 || fs.PUKRetries < 1 || fs.PUKRetries > 15 ||
		fs.PINRetriesLeft < 0 || fs.PINRetriesLeft > fs.PINRetries || fs.PUKRetriesLeft < 0 || fs.PUKRetriesLeft > fs.PUKRetries {
		return nil, fmt.Errorf("retry counters out of range")
	}
	if mgmtKeyLength(fs.ManagementAlg) != len(fs.ManagementKey) {
		return nil, fmt.Errorf("management key: algorithm %#x with %d bytes", fs.ManagementAlg, len(fs.ManagementKey))
	}
	c := &Card{
		serial: fs.Serial, version: fs.Version, pin: fs.PIN, puk: fs.PUK,
		pinMax: fs.PINRetries, pinLeft: fs.PINRetriesLeft, pukMax: fs.PUKRetries, pukLeft: fs.PUKRetriesLeft,
		mgmtAlg: fs.ManagementAlg, mgmtKey: bytes.Clone(fs.ManagementKey),
		keys: map[byte]*slotKey{}, objects: map[uint32][]byte{}, formFactor: fs.FormFactor,
	}
	if c.formFactor == 0 {
		c.formFactor = FormFactorUSBAKeychain
	}
	if fs.AttestationRootKey != nil || fs.AttestationRootCert != nil {
		root, err := rootFromFile(fs.AttestationRootKey, fs.AttestationRootCert)
		if err != nil {
			return nil, fmt.Errorf("attestation root: %w", err)
		}
		c.root = root
	}
	for name, fk := range fs.Keys {
		slot, err := strconv.ParseUint(name, 16, 8)
		if err != nil || (!isKeySlot(byte(slot)) && byte(slot) != slotAttestation) {
			return nil, fmt.Errorf("key slot %q", name)
		}
		k, err := x509.ParsePKCS8PrivateKey(fk.PKCS8)
		if err != nil {
			return nil, fmt.Errorf("key slot %s: %w", name, err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key slot %s: %T is no signer", name, k)
		}
		alg, err := algOf(signer)
		if err != nil || alg != fk.Algorithm {
			return nil, fmt.Errorf("key slot %s: algorithm %v does not match the key", name, fk.Algorithm)
		}
		pin, touch, err := resolvePolicies(byte(slot), fk.PINPolicy, fk.TouchPolicy)
		if err != nil {
			return nil, fmt.Errorf("key slot %s: invalid policy", name)
		}
		c.keys[byte(slot)] = &slotKey{alg: alg, pin: pin, touch: touch, imported: fk.Imported, signer: signer}
	}
	for name, v := range fs.Objects {
		tag, err := strconv.ParseUint(name, 16, 32)
		if err != nil || !writable(uint32(tag)) {
			return nil, fmt.Errorf("object %q", name)
		}
		c.objects[uint32(tag)] = v
	}
	return c, nil
}

func rootFromFile(keyDER, certDER []byte) (*attestRoot, error) {
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, err
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key %T, want ecdsa", k)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("certificate of another key")
	}
	return &attestRoot{key: key, cert: cert}, nil
}
