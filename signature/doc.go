// Package signature is the room of the signature formats a terminal
// produces and checks. It holds no code of its own; each format is a
// sub-package:
//
//   - signature/cms: detached CMS SignedData with the CAdES-BES attributes,
//     and the raw signature for custom integrations;
//   - signature/pades: signed PDFs (PAdES baseline B-B and B-T) with a
//     visible block, built on signature/cms.
//
// Later formats and their evidence (timestamps, revocation data,
// validation reports) belong here too.
//
// Why the split is here: a format is an engine that takes a
// crypto.Signer and bytes and returns bytes. It does not know where the
// bytes came from or where they go — nothing under signature/ imports
// MQTT, bbolt, HTTP handlers or the wire contract (api). The terminal
// (daemon) calls these engines inside a card session, and tekenctl calls
// the same engines to verify what came back, so a result is checked by
// exactly the code that made it. The wire contract names a format
// ("cms", "raw", "pades") and carries its bytes; it does not build them.
package signature
