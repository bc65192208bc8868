package backend_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/starttls-preload/starttls-preload/internal/pgtest"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/backend"
	"github.com/starttls-preload/starttls-preload/store/sqlite"
)

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, c := range []backend.Config{
		{DataDir: dir},
		{Driver: "sqlite", DSN: filepath.Join(dir, "other.db")},
		{Driver: "memory"},
	} {
		s, err := backend.Open(ctx, c)
		if err != nil {
			t.Fatalf("Open(%+v): %v", c, err)
		}
		if err := s.AddDomain(ctx, store.Domain{Name: "a.example"}); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
		t.Errorf("default SQLite file not under the data directory: %v", err)
	}
	for _, c := range []backend.Config{{Driver: "mysql"}, {Driver: "postgres"}} {
		if _, err := backend.Open(ctx, c); !errors.Is(err, backend.ErrDriver) {
			t.Errorf("Open(%+v) = %v, want ErrDriver", c, err)
		}
	}
}

func TestOpenPostgres(t *testing.T) {
	s, err := backend.Open(context.Background(), backend.Config{Driver: "postgres", DSN: pgtest.DSN(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddDomain(context.Background(), store.Domain{Name: "a.example"}); err != nil {
		t.Fatal(err)
	}
}
