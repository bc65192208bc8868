// Package backend opens the configured store: "sqlite" (the default, a file
// under the data directory), "postgres" (a DSN), or "memory" (nothing kept;
// for trying things out).
package backend

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
	"github.com/starttls-preload/starttls-preload/store/postgres"
	"github.com/starttls-preload/starttls-preload/store/sqlite"
)

// ErrDriver: the configured driver is unknown or misconfigured.
var ErrDriver = errors.New("store: unknown driver")

// Config says which store to open (the store.* config keys and the data
// directory).
type Config struct {
	Driver  string // "sqlite" (default), "postgres" or "memory"
	DSN     string // postgres: the connection string; sqlite: the file (default DataDir/starttls-preload.db)
	DataDir string
}

// Open opens the store c names, applying pending migrations.
func Open(ctx context.Context, c Config) (store.Store, error) {
	switch c.Driver {
	case "", "sqlite":
		path := c.DSN
		if path == "" {
			path = filepath.Join(c.DataDir, sqlite.FileName)
		}
		return sqlite.Open(ctx, path)
	case "postgres", "postgresql":
		if c.DSN == "" {
			return nil, fmt.Errorf("%w: store.driver postgres needs store.dsn", ErrDriver)
		}
		return postgres.Open(ctx, c.DSN)
	case "memory":
		return memstore.New(), nil
	}
	return nil, fmt.Errorf("%w %q (want sqlite, postgres or memory)", ErrDriver, c.Driver)
}
