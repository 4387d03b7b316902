package gateway

import (
	"context"
	"errors"

	"github.com/tekenid/teken/gateway/store"
)

// openPostgres opens the PostgreSQL store.
func openPostgres(context.Context, Config) (store.Store, error) {
	return nil, errors.New("store.kind postgres: not in this build")
}
