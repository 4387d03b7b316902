// Package layout holds no code; its test checks the dependency rules of the
// repository's packages, so that the rooms described in the README cannot
// drift apart one convenient import at a time.
//
// The test reads every package's imports (non-test files, in-package test
// files and external test files) from `go list` and enforces:
//
//  0. Every package lives in a known room (the leaves, daemon/..., gateway/...,
//     cmd/..., internal/..., packaging/..., examples/..., validation) and every package a rule
//     names exists, so that a new or renamed package cannot slip past the
//     rules unseen.
//  1. Only transport imports paho (github.com/eclipse/paho.mqtt.golang),
//     in any file: the MQTT client, its reconnects and its quirks stay
//     behind one API, and api stays a contract without a client.
//  2. Only device and device/... import piv-go: PC/SC and card errors are
//     mapped to typed errors there once, so no caller decides on piv-go's.
//  3. Only queue and gateway/store/boltstore import bbolt: each file's layout
//     (tekend.db, the gateway's store) is its one package's alone.
//  4. A leaf (api, queue, device, device/..., transport, signature/...)
//     imports no other package of the module in its non-test files, except
//     transport → api (the transport speaks the contract),
//     signature/pades → signature/cms (a PDF signature holds a CMS one),
//     signature/pades → signature/tsa and signature/revocation (a PDF is
//     stamped and given its validation data through them) and
//     signature/tsa → signature/cms (a timestamp token is a CMS signature).
//     Leaves are wired together by daemon only, so each can be understood,
//     tested and reused on its own.
//  5. daemon/... never imports cmd/..., whose binaries are thin shells over
//     it; daemon/kiosk is standard-library only, so that the code facing the
//     kiosk browser has nothing outside Go and its own files to audit.
//  6. internal/ctl and internal/demo (tekenctl's code) are imported only
//     from internal/... and cmd/...; internal/testenv and internal/tekentest
//     are imported only by test files and by internal/tekentest, so that no
//     binary links the machinery that starts pcscd and Mosquitto.
//     Also (5c) daemon/... (the terminal) and gateway/... (the central
//     side as a service) never import each other, and gateway/... never
//     imports cmd/...: they meet only on the wire.
//  7. cmd/... imports only daemon/..., gateway/..., internal/..., validation, route and the
//     leaves, never another binary nor packaging.
//  8. Nothing outside examples/... imports it: the examples are what an
//     integrator reads (Python, shell), checked by their own test files.
//  9. validation, the report of a signature that tekenctl verify prints and
//     a Go central system imports, imports only api and signature/...: a
//     central system gets no terminal code with it.
//  10. route, the central side's library that carries a letter through its
//     paraf and ttd, imports only api and transport: a central system gets
//     no terminal code with it.
//
// Rules 1 to 3 hold for test files too unless stated otherwise; the few
// exceptions the tree needs today are listed, each with its reason, in the
// test, which also fails when an exception is no longer used.
package layout
