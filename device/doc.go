// Package device owns the official's PIV token: the readers, presence (tap
// and removal), certificates, PIN retries, PIN verification and signing, and
// the typed errors callers decide on. It is the only package that imports
// piv-go.
//
// # Use
//
// Open returns a Tokens, which watches every reader and offers card
// operations. Info reads a token without a PIN. Session opens a token
// exclusively, runs a function with a *Session (VerifyPIN, Sign, Signer,
// SlotPINPolicy), then closes the card and resets it. Close stops it all.
//
// # Enrolment
//
// Admin opens a token as Session does for IT's enrolment (admin.go,
// adminkeys.go): ChangePIN and ChangePUK, ProtectManagementKey,
// GenerateKey (on the device, PIN policy always), Attestation, a Signer for the CSR, and
// ImportCertificate, which refuses a certificate of another key. Info
// reports Defaults, the factory credentials a token still has, from GET
// METADATA of the PIN, PUK and management key, which piv-go v2.6.0 cannot
// read (metadata.go reads it on a short connection of its own, before
// piv-go connects, under the card lock). ProtectManagementKey replaces the
// default management key with a random AES-192 key (3DES before firmware
// 5.4), stored in the PIN-protected object and flagged in the admin data
// object as ykman and yubico-piv-tool do (pivman.go), so that ykman
// administers the token afterwards with the PIN alone. It stores the new key
// before it sets it, so that a failure in between leaves the default key
// working.
//
// # Presence
//
// One goroutine waits in SCardGetStatusChange with an infinite timeout on
// every reader plus the \\?PnP?\Notification pseudo-reader, which changes
// when a reader is plugged in or out. The call blocks in pcscd's socket, so
// an idle terminal costs no wake-ups in this process; pcscd itself learns of
// a tap from the reader driver, and pcsc-lite's event thread reports the
// change to waiting clients at once. Close interrupts the wait with
// SCardCancel. When pcscd goes away the wait fails: the watcher reports
// every present token Left, reconnects with capped backoff (50 ms to 1 s),
// and reports the tokens it then finds Arrived.
//
// piv-go does not expose SCardGetStatusChange. The alternative, polling
// piv.Cards and opening each reader, costs wake-ups while idle, takes the
// card exclusively away from other applications, and still adds up to a
// polling period of latency. github.com/ebfe/scard would be the binding of
// choice but is not served by the module proxy this project builds from, so
// pcsc.go binds the seven calls needed against the same libpcsclite that
// piv-go links (cgo, pkg-config libpcsclite): no new dependency at all.
//
// Measured on the reference machine (2 cores) through piv-go → libpcsclite
// → pcscd 1.9.9 → vpcd → pivsim (docs/BENCHMARKS.md, "device"): idle CPU of
// the watching process 0.46 ms per second with a token present
// (BenchmarkIdleCPU, getrusage over 10 s); presence events 333 ms after an
// insert and 228 ms after a removal on average (BenchmarkPresenceLatency).
// Nearly all of that is pcscd's: vpcd cannot signal card events, so pcscd
// polls it every 400 ms; readers whose driver signals events (libccid with
// an interrupt endpoint) and USB tokens, which arrive as a new reader
// through the PnP notification, are reported as soon as pcscd knows.
//
// # Card access
//
// All card access is serialised by one lock in Tokens (as
// FiloSottile/yubikey-agent does). A card is held exclusively only from
// open to close of one operation, so ykman or yubico-piv-tool can use the
// token between jobs. When another application holds it
// (SCARD_E_SHARING_VIOLATION) the operation retries with backoff for up to
// Options.BusyWait and then fails with ErrCardBusy. Every operation
// establishes its own PC/SC context (piv-go does so in piv.Open), so while
// pcscd is down operations fail with ErrPCSCUnavailable and the first one
// after it is back works, with no reconnect state to go stale.
//
// # PIN safety
//
// A wrong PIN is never retried. VerifyPIN refuses with ErrLastAttempt,
// without touching the card's counter, when one retry is left unless the
// caller confirms the last attempt. No default PIN is ever tried: signing
// passes piv.PINPolicyNever to piv-go so that it never looks for a PIN
// itself, and VerifyPIN is the only path for a PIN. PINs are []byte owned by
// the caller and are not kept or logged. After every Session the card is
// reset (SCARD_RESET_CARD), because piv-go's Close leaves the card as it is
// and the PIN would stay verified for the next user of the token. piv-go
// closes its connection before the reset can connect, so another process
// that connects in exactly that instant would find the PIN verified;
// piv-go keeps its card handle private, so the reset cannot use it.
//
// # Errors
//
// Errors from piv-go and PC/SC are mapped once (classify, in errors.go) to
// the sentinels ErrNoReader, ErrNoToken, ErrTokenRemoved, ErrPINBlocked,
// ErrPUKBlocked, ErrLastAttempt, ErrPINRequired, ErrCardBusy,
// ErrPCSCUnavailable, ErrUnsupported, ErrSlotEmpty, ErrManagementKeyUnknown
// and ErrKeyMismatch, each wrapping the
// original error, which stays in the chain. A wrong PIN or PUK is the
// exception: authError replaces piv-go's AuthErr with a *PINError that
// carries the retries left and nothing of piv-go, so no caller needs to
// import piv-go to decide.
package device
