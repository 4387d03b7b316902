package pgstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tekenid/teken/gateway/store"
)

// appendEvent gives l the next Seq and appends its event, with a delivery
// to each of its client's hooks, in tx. Taking the counter row's lock
// here, late in the transaction, keeps the stretch during which appends
// queue behind each other short.
func (s *Store) appendEvent(ctx context.Context, tx pgx.Tx, l *store.Letter) error {
	var seq int64
	if err := tx.QueryRow(ctx, `UPDATE event_seq SET last = last + 1 WHERE id = 1 RETURNING last`).Scan(&seq); err != nil {
		return fmt.Errorf("next event seq: %w", err)
	}
	l.Seq = uint64(seq)
	at := stamp(l.UpdatedAt)
	if _, err := tx.Exec(ctx, `INSERT INTO events (seq, client, letter_id, state, reason, detail, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		seq, l.Client, l.ID, string(l.State), l.Reason, l.Detail, at); err != nil {
		return fmt.Errorf("append event %d: %w", seq, err)
	}
	hooks := s.hooks(l.Client)
	if len(hooks) == 0 {
		return nil
	}
	// WITH ORDINALITY: the deliveries' ids follow the order of the hooks.
	if _, err := tx.Exec(ctx, `INSERT INTO deliveries (client, endpoint, event_seq, letter_id, next_at)
		SELECT $1, h.endpoint, $3, $4, $5 FROM unnest($2::text[]) WITH ORDINALITY AS h(endpoint, n) ORDER BY h.n`,
		l.Client, hooks, seq, l.ID, at); err != nil {
		return fmt.Errorf("deliveries of event %d: %w", seq, err)
	}
	return nil
}

func (s *Store) Events(ctx context.Context, client string, after uint64, limit int) ([]store.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, client, letter_id, state, reason, detail, at FROM events
		WHERE client = $1 AND seq > $2 ORDER BY seq LIMIT $3`, client, int64(min(after, 1<<63-1)), limit)
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", client, err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var ev store.Event
		var seq int64
		var state string
		if err := rows.Scan(&seq, &ev.Client, &ev.LetterID, &state, &ev.Reason, &ev.Detail, &ev.At); err != nil {
			return nil, fmt.Errorf("events of %s: %w", client, err)
		}
		ev.Seq, ev.State, ev.At = uint64(seq), store.State(state), ev.At.UTC()
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of %s: %w", client, err)
	}
	return out, nil
}

// deliveryCols are the columns scanDelivery reads, d for deliveries and
// e for its event.
const deliveryCols = `d.id, d.client, d.endpoint, d.attempts, d.next_at, d.lease_until, d.done, d.done_at,
	d.last_status, d.last_error, e.seq, e.client, e.letter_id, e.state, e.reason, e.detail, e.at`

func scanDelivery(row pgx.Row) (store.Delivery, error) {
	var (
		d             store.Delivery
		id, seq       int64
		lease, doneAt *time.Time
		state         string
	)
	if err := row.Scan(&id, &d.Client, &d.Endpoint, &d.Attempts, &d.NextAt, &lease, &d.Done, &doneAt,
		&d.LastStatus, &d.LastError, &seq, &d.Event.Client, &d.Event.LetterID, &state, &d.Event.Reason,
		&d.Event.Detail, &d.Event.At); err != nil {
		return store.Delivery{}, err
	}
	d.ID, d.Event.Seq, d.Event.State = uint64(id), uint64(seq), store.State(state)
	d.NextAt, d.Event.At = d.NextAt.UTC(), d.Event.At.UTC()
	d.LeaseUntil, d.DoneAt = fromNull(lease), fromNull(doneAt)
	return d, nil
}

func collectDeliveries(rows pgx.Rows) ([]store.Delivery, error) {
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *Store) ClaimDeliveries(ctx context.Context, now, until time.Time, limit int) ([]store.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []store.Delivery
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `WITH c AS (
				SELECT id FROM deliveries
				WHERE NOT done AND next_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
				ORDER BY id LIMIT $3
				FOR UPDATE SKIP LOCKED),
			d AS (UPDATE deliveries SET lease_until = $2 FROM c WHERE deliveries.id = c.id RETURNING deliveries.*)
			SELECT `+deliveryCols+` FROM d JOIN events e ON e.seq = d.event_seq`,
			stamp(now), stamp(until), limit)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		out, err = collectDeliveries(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	slices.SortFunc(out, func(a, b store.Delivery) int { return compareU64(a.ID, b.ID) })
	return out, nil
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Store) Attempted(ctx context.Context, id uint64, a store.Attempt) error {
	// A delivery already done stays as it is: another instance's attempt
	// got there first.
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET attempts = attempts + 1, last_status = $2,
			last_error = $3, lease_until = NULL, done = $4::boolean,
			done_at = CASE WHEN $4::boolean THEN $5::timestamptz ELSE done_at END,
			next_at = CASE WHEN $4::boolean THEN next_at ELSE $6::timestamptz END
		WHERE id = $1 AND NOT done`,
		int64(id), a.Status, a.Error, a.OK, stamp(a.At), stamp(a.NextAt))
	if err != nil {
		return fmt.Errorf("record attempt of delivery %d: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries WHERE id = $1)`, int64(id)).Scan(&exists); err != nil {
		return fmt.Errorf("record attempt of delivery %d: %w", id, err)
	}
	if !exists {
		return fmt.Errorf("record attempt: no delivery %d", id)
	}
	return nil
}

func (s *Store) Deliveries(ctx context.Context, letterID string) ([]store.Delivery, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM deliveries d JOIN events e ON e.seq = d.event_seq
		WHERE d.letter_id = $1 ORDER BY d.id`, letterID)
	if err != nil {
		return nil, fmt.Errorf("deliveries of letter %s: %w", letterID, err)
	}
	out, err := collectDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("deliveries of letter %s: %w", letterID, err)
	}
	return out, nil
}

func (s *Store) Audit(ctx context.Context, e store.AuditEntry) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO audit (at, client, method, path, status, letter_id, remote)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		stamp(e.At), e.Client, e.Method, e.Path, e.Status, e.LetterID, e.Remote); err != nil {
		return fmt.Errorf("audit %s %s: %w", e.Method, e.Path, err)
	}
	return nil
}
