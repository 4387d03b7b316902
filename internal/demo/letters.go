package demo

import (
	"fmt"
	"strings"

	"github.com/tekenid/teken/api"
)

// letter is a sample letter of a provincial government.
type letter struct {
	Title, Number, Sender string
	Body                  []string
	// VerifyURL, when set, makes the letter a pades document: the
	// terminal returns it signed, with a visible block whose QR code
	// opens VerifyURL.
	VerifyURL string
}

// sampleLetters are the three letters `make demo` dispatches.
var sampleLetters = []letter{
	{
		Title:  "Undangan Rapat Koordinasi Penyusunan APBD 2027",
		Number: "005/1234/SETDA/XI/2026",
		Sender: "Sekretariat Daerah Provinsi Sulawesi Tenggara",
		Body: []string{
			"Dalam rangka penyusunan Anggaran Pendapatan dan Belanja Daerah Tahun 2027,",
			"kami mengundang Bapak/Ibu untuk menghadiri rapat koordinasi pada:",
			"Hari/tanggal : Senin, 7 Desember 2026",
			"Pukul        : 09.00 WITA - selesai",
			"Tempat       : Ruang Rapat Bahteramas, Kantor Gubernur",
			"Demikian undangan ini disampaikan. Atas kehadirannya diucapkan terima kasih.",
		},
	},
	{
		Title:  "Nota Dinas Penyesuaian Jam Pelayanan Publik",
		Number: "800/567/BKD/XI/2026",
		Sender: "Badan Kepegawaian Daerah",
		Body: []string{
			"Sehubungan dengan libur nasional dan cuti bersama akhir tahun,",
			"jam pelayanan publik pada seluruh perangkat daerah disesuaikan menjadi",
			"pukul 08.00 - 14.00 WITA mulai 22 sampai dengan 31 Desember 2026.",
			"Mohon agar penyesuaian ini diumumkan kepada masyarakat.",
		},
	},
	{
		Title:  "Surat Keputusan Tim Percepatan Transformasi Digital",
		Number: "188.4/890/DISKOMINFO/XI/2026",
		Sender: "Dinas Komunikasi dan Informatika",
		Body: []string{
			"Menetapkan susunan Tim Percepatan Transformasi Digital Pemerintah Provinsi",
			"sebagaimana tercantum dalam lampiran keputusan ini, dengan tugas menyusun",
			"peta jalan tanda tangan elektronik pada layanan persuratan dinas.",
			"Keputusan ini berlaku sejak tanggal ditetapkan.",
		},
		VerifyURL: "https://tte.example.go.id/v/188.4-890-DISKOMINFO-XI-2026",
	},
}

// document renders the letter as the PDF the official reads and signs.
func (l letter) document(i int) api.Document {
	pdf := LetterPDF(l.Sender, l.Number, l.Title, l.Body...)
	name := fmt.Sprintf("surat-%d-%s.pdf", i+1, strings.ReplaceAll(strings.ToLower(strings.Fields(l.Title)[0]), "/", "-"))
	d := api.NewDocument("surat", name, "application/pdf", pdf)
	if l.VerifyURL != "" {
		// The terminal's default place: the bottom right of the last page.
		d.Format, d.Visible = api.FormatPAdES, &api.Visible{VerifyURL: l.VerifyURL}
	}
	return d
}

// LetterPDF renders a short letter with the given heading lines as a PDF,
// for tests and examples that need a real, readable document.
func LetterPDF(sender, number, title string, body ...string) []byte {
	return letterPDF([]string{sender, "Nomor   : " + number, "Perihal : " + title}, body)
}
