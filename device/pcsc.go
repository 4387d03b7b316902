package device

// This file binds the few PC/SC calls that piv-go does not expose:
// SCardGetStatusChange (presence), SCardCancel (to stop a blocked wait) and
// SCardConnect/SCardDisconnect with SCARD_RESET_CARD (to clear the PIN state),
// and SCardTransmit (to read the PIN, PUK and management key metadata that
// piv-go refuses, metadata.go). It links the same libpcsclite as piv-go.

// #cgo pkg-config: libpcsclite
// #include <stdlib.h>
// #include <PCSC/winscard.h>
// #include <PCSC/wintypes.h>
import "C"

import (
	"bytes"
	"fmt"
	"unsafe"
)

// pnpReader is the pseudo-reader whose state changes when a reader is
// plugged in or out (pcsc-lite SCardGetStatusChange documentation).
const pnpReader = `\\?PnP?\Notification`

// Reader state bits of SCARD_READERSTATE.dwEventState (pcsclite.h).
const (
	stateChanged     = C.SCARD_STATE_CHANGED
	stateUnknown     = C.SCARD_STATE_UNKNOWN
	stateUnavailable = C.SCARD_STATE_UNAVAILABLE
	statePresent     = C.SCARD_STATE_PRESENT
)

// timeoutInfinite makes SCardGetStatusChange wait until a change or a cancel.
const timeoutInfinite = C.INFINITE

// pcscError is a PC/SC return code from this file's calls.
type pcscError uint32

func (e pcscError) Error() string { return fmt.Sprintf("pc/sc error 0x%08x", uint32(e)) }

func rcErr(rc C.LONG) error {
	if rc == C.SCARD_S_SUCCESS {
		return nil
	}
	return pcscError(uint32(rc))
}

// scardContext is one PC/SC resource manager context. Each is its own
// connection to pcscd, so the presence watcher's blocking wait never holds
// up card operations.
type scardContext struct {
	h C.SCARDCONTEXT
}

func establish() (*scardContext, error) {
	var h C.SCARDCONTEXT
	if err := rcErr(C.SCardEstablishContext(C.SCARD_SCOPE_SYSTEM, nil, nil, &h)); err != nil {
		return nil, fmt.Errorf("establish pc/sc context: %w", err)
	}
	return &scardContext{h: h}, nil
}

func (c *scardContext) release() error {
	return rcErr(C.SCardReleaseContext(c.h))
}

// cancel ends a SCardGetStatusChange that is blocked on this context; it is
// the one call pcsc-lite allows from another thread.
func (c *scardContext) cancel() error {
	return rcErr(C.SCardCancel(c.h))
}

func (c *scardContext) listReaders() ([]string, error) {
	var n C.DWORD
	rc := C.SCardListReaders(c.h, nil, nil, &n)
	if uint32(rc) == codeNoReaders {
		return nil, nil
	}
	if err := rcErr(rc); err != nil {
		return nil, fmt.Errorf("list readers: %w", err)
	}
	buf := make([]byte, n)
	if n == 0 {
		return nil, nil
	}
	rc = C.SCardListReaders(c.h, nil, (*C.char)(unsafe.Pointer(&buf[0])), &n)
	if uint32(rc) == codeNoReaders {
		return nil, nil
	}
	if err := rcErr(rc); err != nil {
		return nil, fmt.Errorf("list readers: %w", err)
	}
	return parseMultiString(buf[:n]), nil
}

// parseMultiString splits a PC/SC multi-string (names separated by NUL,
// ended by an empty name) as pcscd returns it.
func parseMultiString(b []byte) []string {
	var out []string
	for _, s := range bytes.Split(b, []byte{0}) {
		if len(s) > 0 {
			out = append(out, string(s))
		}
	}
	return out
}

// readerState is the Go side of one SCARD_READERSTATE.
type readerState struct {
	name    string
	current uint32
	event   uint32
}

// getStatusChange waits up to timeout milliseconds for any state in states to
// differ from its current value, and fills in event.
func (c *scardContext) getStatusChange(timeout uint32, states []readerState) error {
	if len(states) == 0 {
		return nil
	}
	size := C.size_t(unsafe.Sizeof(C.SCARD_READERSTATE{}))
	arr := (*C.SCARD_READERSTATE)(C.calloc(C.size_t(len(states)), size))
	defer C.free(unsafe.Pointer(arr))
	cs := unsafe.Slice(arr, len(states))
	for i, s := range states {
		cs[i].szReader = C.CString(s.name)
		cs[i].dwCurrentState = C.DWORD(s.current)
	}
	defer func() {
		for i := range cs {
			C.free(unsafe.Pointer(cs[i].szReader))
		}
	}()
	rc := C.SCardGetStatusChange(c.h, C.DWORD(timeout), arr, C.DWORD(len(states)))
	if err := rcErr(rc); err != nil {
		return err
	}
	for i := range states {
		states[i].event = uint32(cs[i].dwEventState)
	}
	return nil
}

// cardHandle is a direct connection to the card, used to reset it, to read
// credential metadata and, in tests, to hold it the way another application
// would.
type cardHandle struct {
	h     C.SCARDHANDLE
	proto C.DWORD
}

func (c *scardContext) connectExclusive(reader string) (*cardHandle, error) {
	name := C.CString(reader)
	defer C.free(unsafe.Pointer(name))
	var h C.SCARDHANDLE
	var proto C.DWORD
	rc := C.SCardConnect(c.h, name, C.SCARD_SHARE_EXCLUSIVE, C.SCARD_PROTOCOL_T0|C.SCARD_PROTOCOL_T1, &h, &proto)
	if err := rcErr(rc); err != nil {
		return nil, fmt.Errorf("connect to %q: %w", reader, err)
	}
	return &cardHandle{h: h, proto: proto}, nil
}

// maxResponse is the largest response SCardTransmit can return
// (pcsclite.h MAX_BUFFER_SIZE_EXTENDED).
const maxResponse = C.MAX_BUFFER_SIZE_EXTENDED

// transmit sends one command APDU and returns the response with its status
// word.
func (h *cardHandle) transmit(apdu []byte) ([]byte, error) {
	if len(apdu) == 0 {
		return nil, fmt.Errorf("transmit: empty command")
	}
	pci := C.SCARD_PCI_T1
	if h.proto == C.SCARD_PROTOCOL_T0 {
		pci = C.SCARD_PCI_T0
	}
	req := C.CBytes(apdu)
	defer C.free(req)
	resp := (*C.BYTE)(C.malloc(maxResponse))
	defer C.free(unsafe.Pointer(resp))
	n := C.DWORD(maxResponse)
	rc := C.SCardTransmit(h.h, pci, (*C.BYTE)(req), C.DWORD(len(apdu)), nil, resp, &n)
	if err := rcErr(rc); err != nil {
		return nil, fmt.Errorf("transmit: %w", err)
	}
	return C.GoBytes(unsafe.Pointer(resp), C.int(n)), nil
}

// disconnect leaves the card as it is (reset false) or resets it, which
// clears its security status, including a verified PIN (ISO/IEC 7816-3 §6.2.2
// warm reset; SP 800-73-4 §3.2.1: security status is lost on reset).
func (h *cardHandle) disconnect(reset bool) error {
	disp := C.DWORD(C.SCARD_LEAVE_CARD)
	if reset {
		disp = C.SCARD_RESET_CARD
	}
	return rcErr(C.SCardDisconnect(h.h, disp))
}
