// Package pgstore is the gateway's store in PostgreSQL, for several
// gateway instances behind a load balancer sharing one database.
//
// Each change of a letter runs in one transaction at READ COMMITTED: the
// letter's row is locked (SELECT … FOR UPDATE) while its change, its
// event and the event's webhook deliveries are written. Events take
// their Seq from one counter row (table event_seq) updated in the same
// transaction, whose lock serialises the appends until they commit, so
// a reader that has seen Seq n has seen every smaller one. Instances
// claim queued letters and due deliveries with FOR UPDATE SKIP LOCKED and
// a lease, so each goes to one instance at a time. Transactions that
// lose a deadlock or a serialization check are run again.
package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tekenid/teken/gateway/store"
)

// Options configures Open.
type Options struct {
	Hooks store.Hooks      // nil: no webhooks
	Now   func() time.Time // time.Now when nil
}

// Store is a store.Store in a PostgreSQL database.
type Store struct {
	pool  *pgxpool.Pool
	hooks store.Hooks
	now   func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (a libpq URL or key=value
// string) and brings its schema up to date.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The DSN may hold a password: say only that it did not parse.
		return nil, errors.New("parse postgres dsn: invalid connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres %s: %w", cfg.ConnConfig.Host, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	s := &Store{pool: pool, hooks: o.Hooks, now: o.Now}
	if s.hooks == nil {
		s.hooks = func(string) []string { return nil }
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key under which one instance at a
// time migrates, so that instances starting together do not race on
// CREATE TABLE ("teken" in ASCII).
const migrationLock = 0x74656b656e

// migrate applies, in one transaction, every migration newer than the
// version schema_version records. Migration files are named NNNN_what.sql
// and never change once released: a new schema is a new file.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("lock for migration: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&have); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		for _, name := range names {
			num, _, _ := strings.Cut(path.Base(name), "_")
			v, err := strconv.Atoi(num)
			if err != nil {
				return fmt.Errorf("migration %s: name does not start with a version", name)
			}
			if v <= have {
				continue
			}
			sql, err := migrations.ReadFile(name)
			if err != nil {
				return fmt.Errorf("read migration %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return fmt.Errorf("apply migration %s: %w", path.Base(name), err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, v); err != nil {
				return fmt.Errorf("record migration %s: %w", path.Base(name), err)
			}
		}
		return nil
	})
}

// maxTries bounds the runs of one transaction that keeps losing
// deadlocks or serialization checks.
const maxTries = 10

// inTx runs fn in a transaction and commits it when fn returns nil. A
// transaction PostgreSQL aborted to break a deadlock or a serialization
// conflict is run again, fn included, after a short random pause.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	for try := 1; ; try++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil || !retryable(err) || try == maxTries {
			return err
		}
		// Jittered so that the losers do not collide again in step.
		pause := time.Duration(rand.Int64N(int64(time.Millisecond) << min(try, 6)))
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// retryable reports whether err is a transaction PostgreSQL aborted so
// that running it again may succeed: serialization_failure or
// deadlock_detected (Appendix A, PostgreSQL Error Codes).
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// isUniqueViolation reports whether err is unique_violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// stamp is t as the database keeps it: UTC, to the microsecond.
func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// nullTime is t as a parameter: NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return stamp(t)
}

// fromNull is a scanned nullable time: the zero time for NULL.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
