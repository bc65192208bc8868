package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migrate applies, in version order, every migration in fsys (files named
// NNNN_what.sql) that the schema_migrations table does not list yet, each in
// its own transaction together with its schema_migrations row. Running it
// again, or from several processes at once, is harmless.
func Migrate(ctx context.Context, db *sql.DB, fsys fs.FS, d Dialect) error {
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return err
	}
	type mig struct {
		version int
		name    string
	}
	var migs []mig
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("sqlstore: migration %s: name must start with a version number", e.Name())
		}
		migs = append(migs, mig{v, e.Name()})
	}
	sort.Slice(migs, func(i, j int) bool { return migs[i].version < migs[j].version })
	s := &Store{db: db, d: d}
	for _, m := range migs {
		body, err := fs.ReadFile(fsys, m.name)
		if err != nil {
			return err
		}
		err = s.tx(ctx, true, func(tx *sql.Tx) error {
			if d.MigrationLock != "" {
				if _, err := tx.ExecContext(ctx, d.MigrationLock); err != nil {
					return err
				}
			}
			// Under the lock, so that concurrent openers do not race to
			// create it.
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				m.version, m.name, time.Now().Unix())
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlstore: migration %s: %w", m.name, err)
		}
	}
	return nil
}
