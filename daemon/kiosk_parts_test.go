package daemon

import (
	"errors"
	"slices"
	"testing"

	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
)

// What the official reads about the parts, from what the probes of /readyz
// say and the number of readers.
func TestOfficialParts(t *testing.T) {
	pcscd := partProblem{part: "pcscd", detail: "list readers: " + device.ErrPCSCUnavailable.Error(), code: kiosk.CodePCSC}
	pcscdHung := partProblem{part: "pcscd", detail: "list readers: context deadline exceeded"}
	broker := partProblem{part: "broker", detail: "not connected"}
	storeDown := partProblem{part: "store", detail: "timeout"}
	storeFull := partProblem{part: "store", detail: "full", code: "err_store_full"}
	intakeFull := partProblem{part: "intake", detail: "retrying: store full", code: "err_store_full"}
	intake := partProblem{part: "intake", detail: "retrying: disk I/O"}
	for _, c := range []struct {
		name        string
		problems    []partProblem
		readers     int
		want        []string
		unavailable bool
	}{
		{"all ready", nil, 1, nil, false},
		{"readers not asked", nil, -1, nil, false},
		{"card service down", []partProblem{pcscd}, -1, []string{kiosk.CodePCSC}, true},
		{"card service hung: no code of its own", []partProblem{pcscdHung}, -1, []string{kiosk.CodePCSC}, true},
		{"card service down: the reader count is not news", []partProblem{pcscd}, 0, []string{kiosk.CodePCSC}, true},
		{"no reader", nil, 0, []string{kiosk.CodeNoReader}, true},
		{"a reader probe of its own", []partProblem{{part: "reader", detail: "none"}}, 0, []string{kiosk.CodeNoReader}, true},
		{"offline", []partProblem{broker}, 2, []string{kiosk.CodeOffline}, false},
		{"broker with a code of its own", []partProblem{{part: "broker", detail: "not connected", code: kiosk.CodeOffline}}, 1, []string{kiosk.CodeOffline}, false},
		{"store does not answer", []partProblem{storeDown}, 1, []string{kiosk.CodeInternal}, true},
		{"store full is a remark", []partProblem{storeFull}, 1, []string{"err_store_full"}, false},
		{"store full said twice, shown once", []partProblem{storeFull, intakeFull}, 1, []string{"err_store_full"}, false},
		{"intake retrying is for IT", []partProblem{intake}, 1, nil, false},
		{"most pressing first", []partProblem{storeFull, broker, pcscd, intake}, -1,
			[]string{kiosk.CodePCSC, "err_store_full", kiosk.CodeOffline}, true},
		{"offline and no reader", []partProblem{broker}, 0, []string{kiosk.CodeNoReader, kiosk.CodeOffline}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := officialParts(c.problems, c.readers)
			var codes []string
			for _, m := range got.messages {
				codes = append(codes, m.Code)
			}
			if !slices.Equal(codes, c.want) || got.unavailable != c.unavailable {
				t.Errorf("got %v unavailable %v, want %v unavailable %v", codes, got.unavailable, c.want, c.unavailable)
			}
		})
	}
}

// Every code officialParts sets itself is in the catalogues.
func TestOfficialPartsCodesCatalogued(t *testing.T) {
	for _, lang := range kiosk.Languages {
		cat, err := kiosk.Catalog(lang)
		if err != nil {
			t.Fatal(err)
		}
		for _, code := range []string{kiosk.CodePCSC, kiosk.CodeNoReader, kiosk.CodeInternal, kiosk.CodeOffline} {
			if cat[code] == "" {
				t.Errorf("%s: %s not catalogued", lang, code)
			}
		}
	}
}

// The parts outlive the screens: a tap, a batch and a removal keep them,
// and the view carries them on every screen.
func TestPagePartsOutliveScreens(t *testing.T) {
	cert, _ := testCert(t)
	p := newPage("id")
	offline := officialParts([]partProblem{{part: "broker", detail: "not connected"}}, 1)
	if !p.setParts(offline) {
		t.Fatal("first notice: no change")
	}
	if p.setParts(officialParts([]partProblem{{part: "broker", detail: "other words"}}, 2)) {
		t.Fatal("the same notice again counts as a change")
	}
	check := func(when string) {
		t.Helper()
		v := p.view(20)
		if len(v.Parts) != 1 || v.Parts[0].Code != kiosk.CodeOffline || v.Unavailable {
			t.Errorf("%s: parts %+v unavailable %v", when, v.Parts, v.Unavailable)
		}
	}
	check("idle")
	gen, _ := p.arrive("Reader 0")
	p.read(gen, "Reader 0", tokenRead{info: device.Info{SignCert: cert, PINRetries: 3}})
	check("token")
	if !p.view(20).CanSign {
		t.Error("offline, letters here can no longer be signed")
	}
	if _, err := p.claim(true); err != nil {
		t.Fatal(err)
	}
	p.batchDone(0, 1, errors.New("disk on fire"))
	p.release()
	check("after a failed batch")
	p.leave("Reader 0")
	check("after the removal")
	if !p.setParts(partsNotice{}) {
		t.Fatal("back online: no change")
	}
	if v := p.view(20); v.Parts != nil || v.Unavailable {
		t.Errorf("back online: %+v", v)
	}
}

// partsChanged publishes a view only when what the page says changed, so
// the main loop may call it every tick.
func TestFlowPartsChangedPublishesOnChange(t *testing.T) {
	rec := &pageRecorder{}
	f := newFlow(flowDeps{lang: "id", maxBatch: 20})
	f.pages = rec
	down := officialParts([]partProblem{{part: "pcscd", detail: "down", code: kiosk.CodePCSC}}, -1)
	f.partsChanged(partsNotice{})
	f.partsChanged(down)
	f.partsChanged(down)
	f.partsChanged(officialParts([]partProblem{{part: "pcscd", detail: "still down, other words"}}, -1))
	if len(rec.views) != 1 {
		t.Fatalf("%d views published, want 1", len(rec.views))
	}
	if v := rec.last(); v.State != kiosk.StateIdle || !v.Unavailable || len(v.Parts) != 1 || v.Parts[0].Code != kiosk.CodePCSC {
		t.Fatalf("view %+v", v)
	}
	f.partsChanged(officialParts(nil, 1))
	if v := rec.last(); len(rec.views) != 2 || v.Unavailable || len(v.Parts) != 0 {
		t.Fatalf("after recovery: %d views, last %+v", len(rec.views), v)
	}
}
