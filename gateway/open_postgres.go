package gateway

import (
	"context"

	"github.com/tekenid/teken/gateway/store"
	"github.com/tekenid/teken/gateway/store/pgstore"
)

// openPostgres opens the PostgreSQL store that several gateway instances
// share.
func openPostgres(ctx context.Context, cfg Config) (store.Store, error) {
	return pgstore.Open(ctx, cfg.Store.DSN, pgstore.Options{Hooks: cfg.Hooks()})
}
