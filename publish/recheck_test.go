package publish

import (
	"context"
	"testing"
	"time"
)

// TestArchiveRecheck: with SetRecheck, Current answers from memory between
// its looks at DIR/current: a list another Archive adds is not seen until
// the interval ends (here: never, an hour), one this Archive adds is seen
// at once; SetRecheck(0) looks again on every call.
func TestArchiveRecheck(t *testing.T) {
	key := newKey(t)
	ctx := context.Background()
	a, err := OpenArchive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a.SetRecheck(time.Hour)
	if _, err := a.Current(ctx); err != ErrNotFound {
		t.Fatalf("empty archive: %v", err)
	}
	current := func(want int64) {
		t.Helper()
		cur, err := a.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cur.Serial != want {
			t.Fatalf("Current: serial %d, want %d", cur.Serial, want)
		}
	}
	if err := a.Add(ctx, snapshot(t, key, testList(10, 1))); err != nil {
		t.Fatal(err)
	}
	current(10)
	other, err := OpenArchive(a.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Add(ctx, snapshot(t, key, testList(11, 1))); err != nil {
		t.Fatal(err)
	}
	current(10) // another writer's list: not looked for within the hour
	if err := a.Add(ctx, snapshot(t, key, testList(12, 1))); err != nil {
		t.Fatal(err)
	}
	current(12) // its own: at once
	if err := other.Add(ctx, snapshot(t, key, testList(13, 1))); err != nil {
		t.Fatal(err)
	}
	current(12)
	a.SetRecheck(0)
	current(13)
}
