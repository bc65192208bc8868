// Package sqlite is the default store: one SQLite file (under the data
// directory) through modernc.org/sqlite, pure Go without cgo, in WAL mode.
// The schema is embedded and migrated on Open.
//
// Writers take the database's write lock at BEGIN (BEGIN IMMEDIATE), so a
// transaction never fails half-way for lack of the lock. In WAL mode with
// synchronous=NORMAL a committed transaction survives the process being
// killed at any moment; a power loss may lose the last commits but never
// leaves one half-applied (and list serials are guarded again by the publish
// archive, which refuses a serial it has already seen). Several processes may open the same file (serve and an operator's
// `domains` command); they wait for each other up to the busy timeout.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MmapSize is how much of the database file each connection maps for
// reading (PRAGMA mmap_size).
const MmapSize = 1 << 30

// FileName is the database file's name under the data directory.
const FileName = "starttls-preload.db"

// Store is the SQLite store.
type Store struct{ *sqlstore.Store }

var _ store.Store = (*Store)(nil)

var dialect = sqlstore.Dialect{IntTimes: true, SerializeWrites: true, NumberChecks: true, LocalReads: true}

// Open opens (creating if needed) the database file at path and applies any
// pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	}
	// The file holds contacts and ownership proofs: readable by the
	// service alone (SQLite gives its -wal and -shm files the same mode).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	// Reads map the file instead of copying each page with pread(2):
	// a status page's reads spent a tenth of their time in that system
	// call. Address space only; the kernel's page cache holds the pages.
	q.Add("_pragma", "mmap_size("+strconv.Itoa(MmapSize)+")")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// A few connections: readers proceed beside the one writer (WAL).
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: opening %s: %w", path, err)
	}
	sub, _ := fs.Sub(migrations, "migrations")
	if err := sqlstore.Migrate(ctx, db, sub, dialect); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return &Store{sqlstore.New(db, dialect)}, nil
}
