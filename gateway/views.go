package gateway

import (
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/gateway/store"
)

// The JSON the API answers with; gateway/openapi.yaml describes each
// (TestOpenAPISchemasMatchGoTypes holds them to it).

// LetterView is a letter as the API shows it.
type LetterView struct {
	ID             string         `json:"id"`
	State          store.State    `json:"state"`
	Reason         string         `json:"reason,omitempty"`
	Detail         string         `json:"detail,omitempty"`
	IdempotencyKey string         `json:"idempotency_key,omitempty"`
	Terminal       string         `json:"terminal"`
	Signer         SubmitSigner   `json:"signer"`
	Title          string         `json:"title"`
	Number         string         `json:"number"`
	CancelAsked    bool           `json:"cancel_requested,omitempty"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
	ExpiresAt      time.Time      `json:"expires_at"`
	Seq            uint64         `json:"seq"`
	Receipts       []ReceiptView  `json:"receipts,omitempty"`
	Documents      []DocumentView `json:"documents,omitempty"`
}

// ReceiptView is a terminal's answer to the letter's job or cancel.
type ReceiptView struct {
	For    string    `json:"for"`
	Status string    `json:"status"`
	Reason string    `json:"reason,omitempty"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// DocumentView is one document of a letter and, once signed, where its
// signature is.
type DocumentView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	MediaType string     `json:"media_type"`
	SHA256    string     `json:"sha256"`
	Format    api.Format `json:"format"`
	Level     string     `json:"level,omitempty"`
	Signed    string     `json:"signed,omitempty"` // the URL path of the signed document or signature
}

func viewOf(l *store.Letter, withDocs bool) LetterView {
	v := LetterView{ID: l.ID, State: l.State, Reason: l.Reason, Detail: l.Detail, IdempotencyKey: l.IdempotencyKey,
		Terminal: l.Terminal, Signer: SubmitSigner{CertSHA256: l.SignerCert, NIP: l.SignerNIP}, Title: l.Title, Number: l.Number,
		CancelAsked: l.CancelAsked, CreatedAt: l.CreatedAt, UpdatedAt: l.UpdatedAt, ExpiresAt: l.ExpiresAt, Seq: l.Seq}
	for _, r := range l.Receipts {
		v.Receipts = append(v.Receipts, ReceiptView(r))
	}
	if !withDocs || l.Envelope == nil {
		return v
	}
	job, err := jobOf(l.Envelope)
	if err != nil {
		return v
	}
	v.Signer.Name, v.Signer.Jabatan = job.Signer.Name, job.Signer.Jabatan
	var res *api.Result
	if l.Result != nil {
		res, _ = api.DecodeResult(l.Result)
	}
	for _, d := range job.Documents {
		dv := DocumentView{ID: d.ID, Name: d.Name, MediaType: d.MediaType, SHA256: d.SHA256, Format: d.Format}
		if dv.Format == "" {
			dv.Format = api.FormatCMS
		}
		if res != nil && res.Outcome == api.OutcomeSigned {
			for _, sd := range res.Documents {
				if sd.ID == d.ID {
					dv.Level, dv.Signed = sd.Level, "/v1/letters/"+l.ID+"/documents/"+d.ID+"/signed"
				}
			}
		}
		v.Documents = append(v.Documents, dv)
	}
	return v
}

// ListView is a page of letters.
type ListView struct {
	Letters    []LetterView `json:"letters"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// DeliveryView is one webhook delivery of a letter's event.
type DeliveryView struct {
	ID         string      `json:"id"`
	Endpoint   string      `json:"endpoint"`
	Seq        uint64      `json:"seq"`
	State      store.State `json:"state"`
	Attempts   int         `json:"attempts"`
	Delivered  bool        `json:"delivered"`
	DoneAt     *time.Time  `json:"delivered_at,omitempty"`
	NextAt     *time.Time  `json:"next_attempt_at,omitempty"`
	LastStatus int         `json:"last_status,omitempty"`
	LastError  string      `json:"last_error,omitempty"`
}

// EventView is one change in a client's feed.
type EventView struct {
	Seq      uint64      `json:"seq"`
	LetterID string      `json:"letter_id"`
	State    store.State `json:"state"`
	Reason   string      `json:"reason,omitempty"`
	Detail   string      `json:"detail,omitempty"`
	At       time.Time   `json:"at"`
}

// TerminalView is a terminal's last status.
type TerminalView struct {
	Terminal           string    `json:"terminal"`
	State              api.State `json:"state"`
	Version            string    `json:"version,omitempty"`
	Edition            int       `json:"edition,omitempty"`
	TokenPresent       bool      `json:"token_present"`
	JobsWaiting        int       `json:"jobs_waiting"`
	ResultsUndelivered int       `json:"results_undelivered"`
	LastError          string    `json:"last_error,omitempty"`
	Since              time.Time `json:"since"`
	SeenAt             time.Time `json:"seen_at"`
}
