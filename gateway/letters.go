package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/gateway/store"
)

// SubmitRequest is a letter as a letter system submits it (POST
// /v1/letters), in JSON or as the "letter" part of a multipart form whose
// other parts are the documents' files.
type SubmitRequest struct {
	// Terminal, or Group: one terminal of the group the client may use
	// (the first that is online, else the first).
	Terminal  string           `json:"terminal,omitempty"`
	Group     string           `json:"group,omitempty"`
	Signer    SubmitSigner     `json:"signer"`
	Title     string           `json:"title"`
	Number    string           `json:"number"`
	Sender    string           `json:"sender"`
	Fields    []api.Field      `json:"fields,omitempty"`
	ExpiresAt *time.Time       `json:"expires_at,omitempty"`
	Documents []SubmitDocument `json:"documents"`
}

// SubmitSigner names the official: by certificate hash, or by NIP when
// the gateway knows the official's certificate.
type SubmitSigner struct {
	CertSHA256 string `json:"cert_sha256,omitempty"`
	NIP        string `json:"nip,omitempty"`
	Name       string `json:"name,omitempty"`
	// Jabatan, the official's position, is written under the name in
	// the block; a letter with it goes to its terminal as a job of v 2.
	Jabatan string `json:"jabatan,omitempty"`
}

// SubmitDocument is one document: its bytes inline (Content, base64 in
// JSON) or in the multipart part named File.
type SubmitDocument struct {
	ID        string       `json:"id"`
	Name      string       `json:"name,omitempty"`
	MediaType string       `json:"media_type,omitempty"`
	Format    api.Format   `json:"format,omitempty"`
	Content   []byte       `json:"content,omitempty"`
	File      string       `json:"file,omitempty"`
	Visible   *api.Visible `json:"visible,omitempty"`
	// Certify: this signature certifies the document (pades, ttd; v 2).
	Certify bool `json:"certify,omitempty"`
}

// readSubmit reads the request body, JSON or multipart, into a
// SubmitRequest with every document's bytes, and the hash that tells
// one request from another under one idempotency key.
func readSubmit(r *http.Request, limit int64) (*SubmitRequest, string, *apiError) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, "", fail(http.StatusUnsupportedMediaType, "unsupported_media_type")
	}
	body := http.MaxBytesReader(nil, r.Body, limit)
	var req SubmitRequest
	h := sha256.New()
	switch mt {
	case "application/json":
		raw, err := io.ReadAll(body)
		if err != nil {
			return nil, "", readFailure(err, limit)
		}
		h.Write(raw)
		if err := decodeStrict(raw, &req); err != nil {
			return nil, "", malformed("%v", err)
		}
	case "multipart/form-data":
		type part struct{ content, fileName, mediaType string }
		files := map[string]part{}
		var meta []byte
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, "", readFailure(err, limit)
			}
			raw, err := io.ReadAll(p)
			if err != nil {
				return nil, "", readFailure(err, limit)
			}
			name := p.FormName()
			fmt.Fprintf(h, "%d:%s:%d:", len(name), name, len(raw))
			h.Write(raw)
			switch {
			case name == "letter":
				meta = raw
			case name == "":
				return nil, "", malformed("a multipart part without a name")
			default:
				if _, dup := files[name]; dup {
					return nil, "", malformed("two parts named %q", name)
				}
				// The file's own name and type serve where the letter
				// leaves them out.
				files[name] = part{string(raw), p.FileName(), p.Header.Get("Content-Type")}
			}
		}
		if meta == nil {
			return nil, "", malformed(`no "letter" part: the letter's fields as JSON`)
		}
		if err := decodeStrict(meta, &req); err != nil {
			return nil, "", malformed("letter part: %v", err)
		}
		for i := range req.Documents {
			d := &req.Documents[i]
			if d.File == "" {
				continue
			}
			f, ok := files[d.File]
			if !ok {
				return nil, "", malformed("documents[%d].file %q: no part of that name", i, d.File)
			}
			if d.Content != nil {
				return nil, "", malformed("documents[%d]: content and file both given", i)
			}
			d.Content = []byte(f.content)
			if d.Name == "" {
				d.Name = f.fileName
			}
			if d.MediaType == "" {
				if t, _, err := mime.ParseMediaType(f.mediaType); err == nil && t != "application/octet-stream" {
					d.MediaType = t
				}
			}
		}
	default:
		return nil, "", fail(http.StatusUnsupportedMediaType, "unsupported_media_type")
	}
	return &req, hex.EncodeToString(h.Sum(nil)), nil
}

func readFailure(err error, limit int64) *apiError {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fail(http.StatusRequestEntityTooLarge, "too_large", "limit", fmt.Sprint(limit))
	}
	return malformed("reading the body: %v", err)
}

// decodeStrict decodes one JSON object, refusing unknown fields: a field
// a client misspelt must not be quietly dropped from an official letter.
func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

// buildJob makes the signed job of a request for one client: the signer
// resolved, the terminal chosen, the documents hashed; every field is
// checked as a terminal would (api.Job.Validate), so a letter the
// gateway takes is one a terminal takes.
func (g *Gateway) buildJob(cl *client, req *SubmitRequest, now time.Time) (*api.Job, *apiError) {
	terminal, aerr := g.chooseTerminal(cl, req)
	if aerr != nil {
		return nil, aerr
	}
	sig := api.Signatory{CertSHA256: req.Signer.CertSHA256, NIP: req.Signer.NIP, Name: req.Signer.Name, Jabatan: req.Signer.Jabatan}
	if sig.CertSHA256 == "" {
		if sig.NIP == "" {
			return nil, malformed("signer: give cert_sha256 or nip")
		}
		known, ok := g.signers[sig.NIP]
		if !ok {
			return nil, fail(http.StatusUnprocessableEntity, "unknown_signer", "nip", sig.NIP)
		}
		sig.CertSHA256 = known.CertSHA256
		if sig.Name == "" {
			sig.Name = known.Name
		}
	} else if known, ok := g.signers[strings.ToLower(sig.CertSHA256)]; ok {
		if sig.NIP == "" {
			sig.NIP = known.NIP
		}
		if sig.Name == "" {
			sig.Name = known.Name
		}
	}
	expires := now.Add(g.cfg.DefaultExpiry.Duration)
	if req.ExpiresAt != nil {
		expires = req.ExpiresAt.UTC()
	}
	j := &api.Job{
		V: api.Version, JobID: store.NewLetterID(), Terminal: terminal, IssuedAt: now.Truncate(time.Second),
		ExpiresAt: expires.Truncate(time.Second), Signer: sig, Title: req.Title, Number: req.Number, Sender: req.Sender,
		Fields: req.Fields,
	}
	if len(req.Documents) == 0 {
		return nil, malformed("documents: at least one")
	}
	for i, d := range req.Documents {
		if d.Content == nil {
			return nil, malformed("documents[%d]: content or file is required", i)
		}
		mt := d.MediaType
		if mt == "" {
			mt = http.DetectContentType(d.Content)
			mt, _, _ = strings.Cut(mt, ";")
		}
		name := d.Name
		if name == "" {
			name = d.ID
		}
		doc := api.NewDocument(d.ID, name, mt, d.Content)
		doc.Format, doc.Visible, doc.Certify = d.Format, d.Visible, d.Certify
		j.Documents = append(j.Documents, doc)
	}
	if j.UsesMarks() {
		// Paraf, anchors, jabatan or certification: the Job of v 2,
		// which a terminal takes only when its status lists it.
		j.V = api.VersionMarks
		if st, known := g.fleet.status(terminal); known && !st.TakesJobVersion(api.VersionMarks) {
			return nil, fail(http.StatusUnprocessableEntity, "version_unsupported", "terminal", terminal)
		}
	}
	if err := j.Validate(); err != nil {
		return nil, malformed("%v", err)
	}
	return j, nil
}

// chooseTerminal is the request's terminal, which the client must be
// allowed, or the first terminal of its group that the client may use
// and that is online.
func (g *Gateway) chooseTerminal(cl *client, req *SubmitRequest) (string, *apiError) {
	switch {
	case req.Terminal != "" && req.Group != "":
		return "", malformed("give terminal or group, not both")
	case req.Terminal != "":
		if err := api.ValidTerminalID(req.Terminal); err != nil {
			return "", malformed("terminal: %v", err)
		}
		if !cl.allows(req.Terminal) {
			return "", fail(http.StatusForbidden, "forbidden_terminal", "terminal", req.Terminal)
		}
		return req.Terminal, nil
	case req.Group != "":
		members, ok := g.cfg.Groups[req.Group]
		if !ok {
			return "", fail(http.StatusUnprocessableEntity, "unknown_group", "group", req.Group)
		}
		first := ""
		for _, t := range members {
			if !cl.allows(t) {
				continue
			}
			if first == "" {
				first = t
			}
			if g.fleet.online(t) {
				return t, nil
			}
		}
		if first == "" {
			return "", fail(http.StatusForbidden, "no_terminal", "group", req.Group)
		}
		return first, nil
	}
	return "", malformed("terminal or group is required")
}

// jobOf reads the job of an envelope the gateway signed itself, without
// checking the signature or the expiry a terminal checks.
func jobOf(env []byte) (*api.Job, error) {
	payload, err := api.UnverifiedPayload(env)
	if err != nil {
		return nil, err
	}
	var j api.Job
	if err := json.Unmarshal(payload, &j); err != nil {
		return nil, fmt.Errorf("JWS payload: %w", err)
	}
	return &j, nil
}
