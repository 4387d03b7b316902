package soak

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/queue"
)

// What a tekend with a big store costs at rest and to start:
//
//	go test -run '^$' -bench BenchmarkTekendBacklogMemory -benchtime 1x ./internal/soak/
//
// For each size, a data directory's store is filled with that many ready
// jobs through the queue package (signed envelopes of one text document of
// 1–2 KiB each, stored as tekend's intake stores them), then the real
// tekend starts on it as its own process, as systemd starts it: with
// NOTIFY_SOCKET pointing at a datagram socket of this benchmark's, and a
// Mosquitto to connect to. Once it is idle — it has said READY=1, answered
// the central side's connect Sync and reports every job waiting — its
// resident set is read from /proc.
//
// Figures: ready_ms, from exec to READY=1; sync_ms, from exec to the
// central side holding the terminal's connect Sync (which lists what it
// holds, so it reads the store); rss_MB (VmRSS) and how it splits,
// rss_anon_MB (what tekend allocated) and rss_file_MB (file pages it maps:
// its binary and tekend.db); db_mapped_MB and db_touched_MB, the size of
// bbolt's mapping of tekend.db and how much of it is resident (smaps Rss);
// store_MB, the file's size; heap_inuse_MB and heap_retained_MB (Go heap
// in use, and held from the system: heap_sys - heap_released), from its
// own go_memstats metrics; populate_s, how long filling the store took.
// Nothing is asserted but that tekend starts and counts every job.
var backlogMemorySizes = []int{10_000, 100_000}

func BenchmarkTekendBacklogMemory(b *testing.B) {
	bin := tekendBinary(b, b.TempDir())
	m := testenv.StartMosquitto(b)
	for _, n := range backlogMemorySizes {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			for range b.N {
				f := runBacklogMemory(b, bin, m.URL, n)
				b.ReportMetric(f.ready.Seconds()*1e3, "ready_ms")
				b.ReportMetric(f.synced.Seconds()*1e3, "sync_ms")
				b.ReportMetric(mb(f.rss), "rss_MB")
				b.ReportMetric(mb(f.anon), "rss_anon_MB")
				b.ReportMetric(mb(f.file), "rss_file_MB")
				b.ReportMetric(mb(f.dbMapped), "db_mapped_MB")
				b.ReportMetric(mb(f.dbTouched), "db_touched_MB")
				b.ReportMetric(mb(f.storeSize), "store_MB")
				b.ReportMetric(mb(f.heapInuse), "heap_inuse_MB")
				b.ReportMetric(mb(f.heapRetained), "heap_retained_MB")
				b.ReportMetric(f.populate.Seconds(), "populate_s")
			}
		})
	}
}

func mb(v int64) float64 { return float64(v) / (1 << 20) }

// memoryFigures are what one run measured.
type memoryFigures struct {
	populate                time.Duration
	ready, synced           time.Duration
	rss, anon, file         int64
	dbMapped, dbTouched     int64
	storeSize               int64
	heapInuse, heapRetained int64
}

const memoryTerminal = "memory-setda-01"

func runBacklogMemory(b *testing.B, bin, url string, n int) memoryFigures {
	b.Helper()
	c := newCentral(b, url)
	d := newTekend(b, bin, memoryTerminal, url, c.pub)
	dataDir := filepath.Join(filepath.Dir(d.conf), "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		b.Fatal(err)
	}
	var f memoryFigures
	start := time.Now()
	populateStore(b, daemon.StorePath(dataDir), c.signer, n)
	f.populate = time.Since(start)

	sock := filepath.Join(b.TempDir(), "notify.sock")
	ready := listenNotify(b, sock)
	syncsBefore := c.syncCount()
	start = time.Now()
	d.start("NOTIFY_SOCKET=" + sock)
	select {
	case <-ready:
		f.ready = time.Since(start)
	case <-time.After(time.Minute):
		b.Fatalf("no READY=1 from tekend within a minute\n%s", tail(d.logPath))
	}
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		if c.syncCount() == syncsBefore {
			return errors.New("no connect sync from tekend yet")
		}
		return nil
	}); err != nil {
		b.Fatalf("%v\n%s", err, tail(d.logPath))
	}
	f.synced = time.Since(start)
	if err := waitStored(d, n, time.Minute); err != nil {
		b.Fatalf("%v\n%s", err, tail(d.logPath))
	}

	pid := d.pid()
	var err error
	for _, v := range []struct {
		field string
		to    *int64
	}{{"VmRSS", &f.rss}, {"RssAnon", &f.anon}, {"RssFile", &f.file}} {
		if *v.to, err = procStatusKB(pid, v.field); err != nil {
			b.Fatal(err)
		}
	}
	if f.dbMapped, f.dbTouched, err = mappingOf(pid, daemon.StorePath(dataDir)); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(daemon.StorePath(dataDir))
	if err != nil {
		b.Fatal(err)
	}
	f.storeSize = st.Size()
	inuse, err := d.metric("go_memstats_heap_inuse_bytes")
	if err != nil {
		b.Fatal(err)
	}
	sys, err := d.metric("go_memstats_heap_sys_bytes")
	if err != nil {
		b.Fatal(err)
	}
	released, err := d.metric("go_memstats_heap_released_bytes")
	if err != nil {
		b.Fatal(err)
	}
	f.heapInuse, f.heapRetained = int64(inuse), int64(sys-released)
	d.stop()
	return f
}

// memoryMeta is the display record tekend's intake keeps beside a job
// (daemon's jobMeta and docMeta, by their JSON names): the store holds
// what tekend would have written.
type memoryMeta struct {
	Title      string          `json:"title"`
	Number     string          `json:"number,omitempty"`
	Sender     string          `json:"sender,omitempty"`
	SignerName string          `json:"signer_name,omitempty"`
	SignerNIP  string          `json:"signer_nip,omitempty"`
	KID        string          `json:"kid,omitempty"`
	IssuedAt   time.Time       `json:"issued_at"`
	Docs       []memoryDocMeta `json:"docs"`
}

type memoryDocMeta struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"`
	MediaType string     `json:"media_type"`
	Size      int64      `json:"size"`
	Format    api.Format `json:"format"`
	Available bool       `json:"available"`
}

// populateStore stores n ready jobs in the store at path, signed by signer
// and addressed to one of a few officials. The jobs are inserted from many
// goroutines at once, so that the store's group commit gathers hundreds
// into each transaction: seconds for 100,000 instead of one fsync each.
func populateStore(b *testing.B, path string, signer *api.Signer, n int) {
	b.Helper()
	s, err := queue.Open(path, queue.Options{TerminalID: memoryTerminal})
	if err != nil {
		b.Fatal(err)
	}
	signers := make([]string, 20)
	for i := range signers {
		sum := sha256.Sum256([]byte("pejabat " + strconv.Itoa(i)))
		signers[i] = hex.EncodeToString(sum[:])
	}
	now := time.Now().UTC().Truncate(time.Second)
	next := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for i := range next {
				if err := storeMemoryJob(s, signer, signers[i%len(signers)], now, i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := s.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

// letterText is the stock of words a letter's 1–2 KiB body is drawn from.
var letterText = strings.Fields(`dengan hormat sehubungan dengan surat saudara nomor perihal permohonan
	bersama ini kami sampaikan bahwa rapat koordinasi pelaksanaan kegiatan tahun anggaran akan dilaksanakan
	pada hari tanggal tempat ruang rapat sekretariat daerah demikian atas perhatian dan kerja sama
	diucapkan terima kasih kepala bagian umum pemerintah provinsi`)

func storeMemoryJob(s *queue.Store, signer *api.Signer, cert string, now time.Time, i int) error {
	r := rand.New(rand.NewPCG(uint64(i), 1))
	var body bytes.Buffer
	for size := 1024 + r.IntN(1024); body.Len() < size; {
		body.WriteString(letterText[r.IntN(len(letterText))])
		body.WriteByte(' ')
	}
	doc := api.NewDocument("surat", "surat.txt", "text/plain", body.Bytes())
	job := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: memoryTerminal, IssuedAt: now, ExpiresAt: now.Add(30 * 24 * time.Hour),
		Signer: api.Signatory{CertSHA256: cert, Name: "Kepala Bagian Umum", NIP: "198001012005011001"},
		Title:  fmt.Sprintf("Undangan rapat koordinasi %d", i+1), Number: fmt.Sprintf("005/%d/SETDA/2026", i+1), Sender: "Sekretariat Daerah",
		Documents: []api.Document{doc}}
	env, err := signer.SignJob(job)
	if err != nil {
		return err
	}
	meta, err := json.Marshal(memoryMeta{Title: job.Title, Number: job.Number, Sender: job.Sender, SignerName: job.Signer.Name,
		SignerNIP: job.Signer.NIP, KID: signer.KID(), IssuedAt: job.IssuedAt,
		Docs: []memoryDocMeta{{ID: doc.ID, Name: doc.Name, MediaType: doc.MediaType, Size: doc.Size, Format: doc.SignatureFormat(), Available: true}}})
	if err != nil {
		return err
	}
	_, _, err = s.InsertReady(context.Background(), queue.Job{ID: job.JobID, Terminal: job.Terminal, Signer: cert, Meta: meta,
		Envelope: env, Digests: []queue.Digest{sha256.Sum256(doc.Content)}, ReceivedAt: now, ExpiresAt: job.ExpiresAt})
	return err
}

// listenNotify listens on the datagram socket at path as systemd does for
// a Type=notify service; the channel closes at the first READY=1.
func listenNotify(b *testing.B, path string) <-chan struct{} {
	b.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line == "READY=1" {
					close(ready)
					return
				}
			}
		}
	}()
	return ready
}

// mappingOf returns the size of the mappings of the file at path in
// process pid, and how much of them is resident (smaps Size and Rss).
func mappingOf(pid int, path string) (size, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	in, found := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			// A mapping's first line: range, perms, offset, dev, inode, path.
			in = len(fields) >= 6 && fields[5] == path
			found = found || in
			continue
		}
		if !in || len(fields) < 2 {
			continue
		}
		kb, perr := strconv.ParseInt(fields[1], 10, 64)
		if perr != nil {
			continue
		}
		switch fields[0] {
		case "Size:":
			size += kb << 10
		case "Rss:":
			rss += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !found {
		return 0, 0, fmt.Errorf("no mapping of %s in /proc/%d/smaps", path, pid)
	}
	return size, rss, nil
}
