// Package pivsim is a software PIV card that sits in a real pcscd reader
// through the vsmartcard vpcd driver, so the whole token path (piv-go,
// libpcsclite, pcscd) runs in tests and demos without hardware.
//
// The card follows NIST SP 800-73-4 Part 2 (the PIV card command interface)
// plus the Yubico PIV extensions that piv-go, yubico-piv-tool and OpenSC use
// on a YubiKey 5 (GET VERSION, GET SERIAL, GET METADATA, SET MANAGEMENT KEY,
// IMPORT KEY, ATTEST, RESET, and the management application's READ CONFIG
// for the form factor; see
// https://docs.yubico.com/yesdk/users-manual/application-piv/commands.html).
// The host never sees a private key: keys are generated, imported and used
// only inside the card, and errors come back as the status words a real card
// returns.
//
// Session state (PIN verified, management key authenticated, selected
// application, command chain, pending response) lives with one insertion:
// a vpcd power off or reset, or Remove, drops it, as cutting power does on a
// real card. Persistent state (keys, objects, PIN, PUK, retry counters,
// management key) lives in the Card and, when the card has a path, is saved
// after every change.
//
// The firmware version decides what the card knows, as on a YubiKey: GET
// METADATA from 5.3, Ed25519 from 5.7. PIN, PUK and management key
// metadata carry the "default value" flag and the retries. Attestation
// chains as a YubiKey's does, leaf ← f9 intermediate ← root, with the card's
// own root standing in for Yubico's PIV Root CA (AttestationRoot).
package pivsim
