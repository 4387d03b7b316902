package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tekenid/teken/gateway/store"
)

// letterCols are the columns scanLetter reads, without the blobs; with
// blobs, envelope and result follow.
const letterCols = `id, client, idempotency_key, request_sha256, terminal, signer_cert, signer_nip,
	title, number, state, reason, detail, cancel_asked, created_at, updated_at, expires_at,
	seq, receipts, lease_until`

const letterColsBlobs = letterCols + `, envelope, result`

// scanLetter reads one row of letterCols, and of the blobs when blobs.
func scanLetter(row pgx.Row, blobs bool) (*store.Letter, error) {
	var (
		l                store.Letter
		state            string
		expires, lease   *time.Time
		seq              int64
		receipts         []byte
		envelope, result []byte
		created, updated time.Time
	)
	dest := []any{&l.ID, &l.Client, &l.IdempotencyKey, &l.RequestSHA256, &l.Terminal, &l.SignerCert, &l.SignerNIP,
		&l.Title, &l.Number, &state, &l.Reason, &l.Detail, &l.CancelAsked, &created, &updated, &expires,
		&seq, &receipts, &lease}
	if blobs {
		dest = append(dest, &envelope, &result)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	l.State = store.State(state)
	l.CreatedAt, l.UpdatedAt = created.UTC(), updated.UTC()
	l.ExpiresAt, l.LeaseUntil = fromNull(expires), fromNull(lease)
	l.Seq = uint64(seq)
	if len(receipts) > 0 {
		if err := json.Unmarshal(receipts, &l.Receipts); err != nil {
			return nil, fmt.Errorf("letter %s receipts: %w", l.ID, err)
		}
	}
	l.Envelope, l.Result = envelope, result
	return &l, nil
}

// receiptsJSON is the receipts column: NULL when there are none.
func receiptsJSON(rs []store.Receipt) (any, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(rs)
	if err != nil {
		return nil, fmt.Errorf("encode receipts: %w", err)
	}
	return b, nil
}

func (s *Store) Create(ctx context.Context, l *store.Letter) (*store.Letter, bool, error) {
	var out *store.Letter
	created := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out, created = nil, false
		if l.IdempotencyKey != "" {
			prev, err := byIdempotencyKey(ctx, tx, l.Client, l.IdempotencyKey, l.RequestSHA256)
			if err != nil || prev != nil {
				out = prev
				return err
			}
		}
		n := *l
		now := stamp(s.now())
		n.State, n.CreatedAt, n.UpdatedAt, n.Seq = store.Queued, now, now, 0
		n.ExpiresAt, n.LeaseUntil = fromNullTime(n.ExpiresAt), fromNullTime(n.LeaseUntil)
		receipts, err := receiptsJSON(n.Receipts)
		if err != nil {
			return err
		}
		// The letter goes in before the event counter is taken: an insert
		// that waits on another transaction's use of the same key must not
		// hold the counter that transaction needs to finish.
		tag, err := tx.Exec(ctx, `INSERT INTO letters (`+letterColsBlobs+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0, $17, $18, $19, $20)
			ON CONFLICT (client, idempotency_key) WHERE idempotency_key <> '' DO NOTHING`,
			n.ID, n.Client, n.IdempotencyKey, n.RequestSHA256, n.Terminal, n.SignerCert, n.SignerNIP,
			n.Title, n.Number, string(n.State), n.Reason, n.Detail, n.CancelAsked, n.CreatedAt, n.UpdatedAt,
			nullTime(n.ExpiresAt), receipts, nullTime(n.LeaseUntil), nonNil(n.Envelope), n.Result)
		if isUniqueViolation(err) {
			return fmt.Errorf("letter %s exists already", n.ID)
		}
		if err != nil {
			return fmt.Errorf("insert letter %s: %w", n.ID, err)
		}
		if tag.RowsAffected() == 0 {
			// Another request with the key committed after our look.
			prev, err := byIdempotencyKey(ctx, tx, l.Client, l.IdempotencyKey, l.RequestSHA256)
			if err == nil && prev == nil {
				err = fmt.Errorf("letter of idempotency key %q vanished", l.IdempotencyKey)
			}
			out = prev
			return err
		}
		if err := s.appendEvent(ctx, tx, &n); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE letters SET seq = $2 WHERE id = $1`, n.ID, int64(n.Seq)); err != nil {
			return fmt.Errorf("letter %s seq: %w", n.ID, err)
		}
		out, created = &n, true
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrIdempotencyMismatch) {
		return nil, false, fmt.Errorf("create letter %s: %w", l.ID, err)
	}
	return out, created, err
}

// nonNil keeps an empty envelope apart from a missing one.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// byIdempotencyKey returns the client's letter under key, nil when there
// is none, with ErrIdempotencyMismatch beside it when sha differs.
func byIdempotencyKey(ctx context.Context, tx pgx.Tx, client, key, sha string) (*store.Letter, error) {
	prev, err := scanLetter(tx.QueryRow(ctx, `SELECT `+letterColsBlobs+` FROM letters
		WHERE client = $1 AND idempotency_key = $2`, client, key), true)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("letter of idempotency key %q: %w", key, err)
	}
	if prev.RequestSHA256 != sha {
		return prev, store.ErrIdempotencyMismatch
	}
	return prev, nil
}

func (s *Store) Get(ctx context.Context, id string) (*store.Letter, error) {
	l, err := scanLetter(s.pool.QueryRow(ctx, `SELECT `+letterColsBlobs+` FROM letters WHERE id = $1`, id), true)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get letter %s: %w", id, err)
	}
	return l, nil
}

func (s *Store) List(ctx context.Context, q store.Query) (store.Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultPage
	}
	limit = min(limit, store.MaxPage)
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Client != "" {
		where = append(where, "client = "+arg(q.Client))
	}
	if q.State != "" {
		where = append(where, "state = "+arg(string(q.State)))
	}
	if q.Terminal != "" {
		where = append(where, "terminal = "+arg(q.Terminal))
	}
	if q.Signer != "" {
		p := arg(q.Signer)
		where = append(where, "(signer_cert = "+p+" OR signer_nip = "+p+")")
	}
	if q.After != "" {
		where = append(where, "id > "+arg(q.After))
	}
	sql := `SELECT ` + letterCols + ` FROM letters`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	// One more than the page: whether it exists says if there is a next.
	sql += ` ORDER BY id LIMIT ` + arg(limit+1)
	letters, err := s.queryLetters(ctx, sql, false, args...)
	if err != nil {
		return store.Page{}, fmt.Errorf("list letters: %w", err)
	}
	page := store.Page{Letters: letters}
	if len(letters) > limit {
		page.Letters = letters[:limit]
		page.Next = letters[limit-1].ID
	}
	return page, nil
}

func (s *Store) queryLetters(ctx context.Context, sql string, blobs bool, args ...any) ([]*store.Letter, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Letter
	for rows.Next() {
		l, err := scanLetter(rows, blobs)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

func (s *Store) Change(ctx context.Context, id string, fn func(*store.Letter) (bool, error)) (*store.Letter, error) {
	var out *store.Letter
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out = nil
		old, err := scanLetter(tx.QueryRow(ctx, `SELECT `+letterColsBlobs+` FROM letters WHERE id = $1 FOR UPDATE`, id), true)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock letter: %w", err)
		}
		n := *old
		// fn may keep what it is given; old stays as read.
		n.Receipts = slices.Clone(old.Receipts)
		n.Envelope, n.Result = bytes.Clone(old.Envelope), bytes.Clone(old.Result)
		changed, err := fn(&n)
		if err != nil || !changed {
			out = old
			return err
		}
		if old.State.Final() && n.State != old.State {
			return fmt.Errorf("letter %s is %s: %w", id, old.State, store.ErrFinal)
		}
		n.ID, n.Client, n.Envelope = old.ID, old.Client, old.Envelope
		n.UpdatedAt = stamp(s.now())
		if n.State != old.State || n.Reason != old.Reason || n.Detail != old.Detail {
			if err := s.appendEvent(ctx, tx, &n); err != nil {
				return err
			}
		}
		receipts, err := receiptsJSON(n.Receipts)
		if err != nil {
			return err
		}
		// The envelope is what was published: a change never rewrites it.
		_, err = tx.Exec(ctx, `UPDATE letters SET idempotency_key = $2, request_sha256 = $3, terminal = $4,
			signer_cert = $5, signer_nip = $6, title = $7, number = $8, state = $9, reason = $10, detail = $11,
			cancel_asked = $12, updated_at = $13, expires_at = $14, seq = $15, receipts = $16, lease_until = $17,
			result = $18
			WHERE id = $1`,
			n.ID, n.IdempotencyKey, n.RequestSHA256, n.Terminal, n.SignerCert, n.SignerNIP, n.Title, n.Number,
			string(n.State), n.Reason, n.Detail, n.CancelAsked, n.UpdatedAt, nullTime(n.ExpiresAt), int64(n.Seq),
			receipts, nullTime(n.LeaseUntil), n.Result)
		if err != nil {
			return fmt.Errorf("write letter: %w", err)
		}
		n.ExpiresAt, n.LeaseUntil = fromNullTime(n.ExpiresAt), fromNullTime(n.LeaseUntil)
		out = &n
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrFinal) {
		return out, fmt.Errorf("change letter %s: %w", id, err)
	}
	return out, err
}

// fromNullTime is t as it reads back: UTC to the microsecond, or zero.
func fromNullTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return stamp(t)
}

func (s *Store) ClaimQueued(ctx context.Context, now, until time.Time, limit int) ([]*store.Letter, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []*store.Letter
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out = nil
		// SKIP LOCKED: letters another instance is claiming or changing
		// right now are not ours to wait for.
		rows, err := tx.Query(ctx, `WITH c AS (
				SELECT id FROM letters
				WHERE state = 'queued' AND (lease_until IS NULL OR lease_until <= $1)
				ORDER BY id LIMIT $3
				FOR UPDATE SKIP LOCKED)
			UPDATE letters l SET lease_until = $2 FROM c WHERE l.id = c.id
			RETURNING `+prefixed("l.", letterColsBlobs), stamp(now), stamp(until), limit)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			l, err := scanLetter(rows, true)
			if err != nil {
				return fmt.Errorf("claimed letter: %w", err)
			}
			out = append(out, l)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim queued letters: %w", err)
	}
	// RETURNING keeps no order: oldest first, as promised.
	slices.SortFunc(out, func(a, b *store.Letter) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// prefixed qualifies each column of a column list with p.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

func (s *Store) Unfinished(ctx context.Context, terminal string, now time.Time) ([]*store.Letter, error) {
	out, err := s.queryLetters(ctx, `SELECT `+letterColsBlobs+` FROM letters
		WHERE terminal = $1 AND state IN ('sent', 'stored') AND (expires_at IS NULL OR expires_at > $2)
		ORDER BY id`, true, terminal, stamp(now))
	if err != nil {
		return nil, fmt.Errorf("unfinished letters of %s: %w", terminal, err)
	}
	return out, nil
}

func (s *Store) Counts(ctx context.Context) (map[store.State]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM letters GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count letters: %w", err)
	}
	defer rows.Close()
	out := map[store.State]int{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count letters: %w", err)
		}
		out[store.State(st)] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count letters: %w", err)
	}
	return out, nil
}
