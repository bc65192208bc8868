// Package postgres is the store for several machines sharing the work:
// PostgreSQL through github.com/jackc/pgx/v5. The schema is embedded and
// migrated on Open (under an advisory lock, so that several processes
// starting at once apply each migration once).
//
// Workers claim due domains with UPDATE … WHERE name IN (SELECT … FOR UPDATE
// SKIP LOCKED) and a lease column: concurrent workers never wait for each
// other's rows nor receive the same domain, and the claims of a worker that
// dies are handed out again once its lease has expired. Every other write
// locks the domain's row (SELECT … FOR UPDATE) before its compare-and-set.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL store.
type Store struct{ *sqlstore.Store }

var _ store.Store = (*Store)(nil)

var dialect = sqlstore.Dialect{
	Dollar:        true,
	Arrays:        true,
	LockRows:      "FOR UPDATE",
	SkipLocked:    "FOR UPDATE SKIP LOCKED",
	MigrationLock: "SELECT pg_advisory_xact_lock(7270010001)",
}

// MaxConns is the size of each process's connection pool.
const MaxConns = 8

// Open connects to the database named by dsn (a postgres:// URL or
// key=value string, as libpq takes; search_path may be set in it) and
// applies any pending migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(MaxConns)
	db.SetMaxIdleConns(MaxConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connecting to %s@%s:%d/%s: %w", cfg.User, cfg.Host, cfg.Port, cfg.Database, err)
	}
	sub, _ := fs.Sub(migrations, "migrations")
	if err := sqlstore.Migrate(ctx, db, sub, dialect); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Store{sqlstore.New(db, dialect)}, nil
}

// DB returns the underlying database handle (for inspection in tests).
func (s *Store) DB() *sql.DB { return s.Store.DB() }
