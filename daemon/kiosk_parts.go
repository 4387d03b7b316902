package daemon

import (
	"slices"

	"github.com/tekenid/teken/daemon/kiosk"
)

// partsNotice is what the official reads about the terminal's parts: the
// messages, most pressing first, and whether a token can be used at all.
// It is computed from the same probes as /readyz and the status (parts), so
// the kiosk cannot say "tap your token" while IT's endpoints say the card
// service is down.
type partsNotice struct {
	messages []kiosk.Message
	// unavailable: no token can be used now (no card service, no reader,
	// no store), so the idle screen asks for no tap.
	unavailable bool
}

func (n partsNotice) equal(o partsNotice) bool {
	return n.unavailable == o.unavailable && slices.EqualFunc(n.messages, o.messages, func(a, b kiosk.Message) bool {
		if a.Code != b.Code || len(a.Params) != len(b.Params) {
			return false
		}
		for k, v := range a.Params {
			if w, ok := b.Params[k]; !ok || w != v {
				return false
			}
		}
		return true
	})
}

// officialParts turns the parts that are not ready, as parts returns them,
// and the number of readers pcscd knows (-1 when it was not asked) into
// what the official reads. A part's own code is used when it has one; the
// parts that must reach the official have a code here otherwise:
//
//   - pcscd: the card service is not running (err_pcscd), whatever the
//     error; no token can be used.
//   - no reader while pcscd answers (err_no_reader); no token can be used.
//   - store not answering (err_internal); no token can be used. A store
//     problem with a code of its own (err_store_full) is a remark: letters
//     already stored can still be signed.
//   - broker: the terminal is offline from the central system
//     (info_offline); letters here can still be signed.
//
// Any other part without a code (intake retrying) is for IT only. Each
// message appears once.
func officialParts(problems []partProblem, readers int) partsNotice {
	var blocking, remarks []kiosk.Message
	add := func(code string, block bool) {
		if code == "" {
			return
		}
		same := func(m kiosk.Message) bool { return m.Code == code }
		if slices.ContainsFunc(blocking, same) || slices.ContainsFunc(remarks, same) {
			return
		}
		if block {
			blocking = append(blocking, kiosk.Message{Code: code})
		} else {
			remarks = append(remarks, kiosk.Message{Code: code})
		}
	}
	pcscdDown := false
	for _, p := range problems {
		code, block := p.code, false
		switch p.part {
		case "pcscd":
			pcscdDown, block = true, true
			if code == "" {
				code = kiosk.CodePCSC
			}
		case "reader":
			block = true
			if code == "" {
				code = kiosk.CodeNoReader
			}
		case "store":
			if code == "" {
				code, block = kiosk.CodeInternal, true
			}
		case "broker":
			if code == "" {
				code = kiosk.CodeOffline
			}
		}
		add(code, block)
	}
	if !pcscdDown && readers == 0 {
		add(kiosk.CodeNoReader, true)
	}
	return partsNotice{messages: append(blocking, remarks...), unavailable: len(blocking) > 0}
}

// kioskParts is what the official reads about problems, as the last probe
// round (parts) found them.
func (d *Daemon) kioskParts(problems []partProblem) partsNotice {
	return officialParts(problems, int(d.readers.Load()))
}
