package device

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-piv/piv-go/v2/piv"
)

// fakeSW stands in for piv-go's APDU error, which is unexported.
type fakeSW uint16

func (f fakeSW) Error() string  { return fmt.Sprintf("smart card error %04x", uint16(f)) }
func (f fakeSW) Status() uint16 { return uint16(f) }

func TestClassify(t *testing.T) {
	pivText := func(code uint32) error {
		for msg, c := range pivMessages {
			if c == code {
				return fmt.Errorf("connecting to smart card: %w", errors.New(msg))
			}
		}
		t.Fatalf("no text for %08x", code)
		return nil
	}
	tests := []struct {
		name string
		err  error
		ph   phase
		want error // nil: returned unchanged
	}{
		{"busy", pcscError(codeSharingViolation), phaseConnect, ErrCardBusy},
		{"busy from piv-go", pivText(codeSharingViolation), phaseConnect, ErrCardBusy},
		{"no card on connect", pcscError(codeNoSmartcard), phaseConnect, ErrNoToken},
		{"no card in session", pcscError(codeNoSmartcard), phaseCard, ErrTokenRemoved},
		{"removed in session", pivText(codeRemoved), phaseCard, ErrTokenRemoved},
		{"reset in session", pivText(codeReset), phaseCard, ErrTokenRemoved},
		{"unknown reader", pivText(codeUnknownReader), phaseConnect, ErrNoReader},
		{"no readers", pcscError(codeNoReaders), phaseConnect, ErrNoReader},
		{"no service", pivText(codeNoService), phaseCard, ErrPCSCUnavailable},
		{"service stopped", pcscError(codeServiceStopped), phaseConnect, ErrPCSCUnavailable},
		{"security status", fmt.Errorf("command failed: %w", fakeSW(0x6982)), phaseCard, ErrPINRequired},
		{"function not supported", fakeSW(0x6a81), phaseCard, ErrUnsupported},
		{"not found", fmt.Errorf("x: %w", piv.ErrNotFound), phaseCard, ErrSlotEmpty},
		{"other status", fakeSW(0x6f00), phaseCard, nil},
		{"comm error", pcscError(codeCommError), phaseCard, nil},
		{"plain", errors.New("x"), phaseCard, nil},
		{"already mapped", fmt.Errorf("a: %w", ErrCardBusy), phaseCard, ErrCardBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err, tt.ph)
			if !errors.Is(got, tt.err) {
				t.Errorf("classify lost the original error: %v", got)
			}
			if s := sentinelOf(got); s != tt.want {
				t.Errorf("classify(%v) = %v, want sentinel %v", tt.err, got, tt.want)
			}
		})
	}
	if classify(nil, phaseCard) != nil {
		t.Error("classify(nil) != nil")
	}
}

func TestPINError(t *testing.T) {
	tests := []struct {
		name             string
		err              error
		retries          int
		blocked, pukBlck bool
	}{
		{"two left", authError(fmt.Errorf("verify pin: %w", piv.AuthErr{Retries: 2}), false), 2, false, false},
		{"pin blocked", authError(piv.AuthErr{}, false), 0, true, false},
		{"puk blocked", authError(piv.AuthErr{}, true), 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pe *PINError
			if !errors.As(tt.err, &pe) || pe.Retries != tt.retries {
				t.Fatalf("%v: want PINError with %d retries", tt.err, tt.retries)
			}
			if errors.Is(tt.err, ErrPINBlocked) != tt.blocked || errors.Is(tt.err, ErrPUKBlocked) != tt.pukBlck {
				t.Errorf("%v: blocked %v/%v, want %v/%v", tt.err, errors.Is(tt.err, ErrPINBlocked), errors.Is(tt.err, ErrPUKBlocked), tt.blocked, tt.pukBlck)
			}
		})
	}
	if authError(errors.New("x"), false) != nil {
		t.Error("authError of a non-auth error")
	}
}

func TestCheckPIN(t *testing.T) {
	for _, tt := range []struct {
		pin string
		ok  bool
	}{{"", false}, {"1", true}, {"12345678", true}, {"123456789", false}} {
		if err := checkPIN([]byte(tt.pin)); (err == nil) != tt.ok {
			t.Errorf("checkPIN(%q) = %v, want ok %v", tt.pin, err, tt.ok)
		}
	}
}

func TestParseMultiString(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\x00", nil},
		{"Virtual PCD 00 00\x00Virtual PCD 00 01\x00\x00", []string{"Virtual PCD 00 00", "Virtual PCD 00 01"}},
		{"a\x00\x00b", []string{"a", "b"}},
	}
	for _, tt := range tests {
		got := parseMultiString([]byte(tt.in))
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("parseMultiString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseMultiString(f *testing.F) {
	f.Add([]byte("Virtual PCD 00 00\x00Virtual PCD 00 01\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		total := 0
		for _, s := range parseMultiString(b) {
			if s == "" {
				t.Fatal("empty reader name")
			}
			for i := range len(s) {
				if s[i] == 0 {
					t.Fatalf("NUL in reader name %q", s)
				}
			}
			total += len(s)
		}
		if total > len(b) {
			t.Fatalf("names longer than input")
		}
	})
}
