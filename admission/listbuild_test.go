package admission

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/store/memstore"
)

func TestListBuilder(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	clock := testclock.New(t0)
	dir := t.TempDir()
	arch, err := publish.OpenArchive(filepath.Join(dir, "archive"))
	if err != nil {
		t.Fatal(err)
	}
	key, created, err := LoadOrCreateKey(filepath.Join(dir, "list-signing.key"), "")
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey = %v, %v", created, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "list-signing.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	if again, created, err := LoadOrCreateKey(filepath.Join(dir, "list-signing.key"), ""); err != nil || created || again == nil {
		t.Fatalf("second LoadOrCreateKey = %v, %v", created, err)
	}
	b := &ListBuilder{Store: st, Archive: arch, Signer: key, Now: clock.Now, Validity: 4 * day}

	// The first list is published even when empty.
	serial, err := b.Publish(ctx, false)
	if err != nil || serial == 0 {
		t.Fatalf("first Publish = %d, %v", serial, err)
	}
	addDomain(t, st, "a.test", Enforce, t0, "mx.a.test")
	addDomain(t, st, "b.test", Demoted, t0, "*.b.test")
	addDomain(t, st, "c.test", Validating, t0, "mx.c.test")
	addDomain(t, st, "d.test", RemovalRequested, t0, "mx.d.test")

	clock.Add(time.Hour)
	s2, err := b.Publish(ctx, false)
	if err != nil || s2 <= serial {
		t.Fatalf("Publish after a change = %d, %v", s2, err)
	}
	snap, err := arch.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := listgen.VerifyBlob(key.Public(), snap.List, snap.Sig); err != nil {
		t.Errorf("signature: %v", err)
	}
	if err := listgen.VerifySSH(key.Public(), snap.List, snap.SSHSig); err != nil {
		t.Errorf("SSH signature: %v", err)
	}
	l, err := listgen.Parse(snap.List)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]listgen.Policy{
		"a.test": {Mode: listgen.ModeEnforce, MXs: []string{"mx.a.test"}},
		"b.test": {Mode: listgen.ModeTesting, MXs: []string{"*.b.test"}},
	}
	if len(l.Policies) != len(want) {
		t.Errorf("policies = %v, want %v", l.Policies, want)
	}
	for name, p := range want {
		got, ok := l.Resolve(name)
		if !ok || got.Mode != p.Mode || len(got.MXs) != 1 || got.MXs[0] != p.MXs[0] {
			t.Errorf("%s: %+v, want %+v", name, got, p)
		}
	}
	if !l.Timestamp.Equal(t0.Add(time.Hour)) || !l.Expires.Equal(t0.Add(time.Hour+4*day)) {
		t.Errorf("timestamp %v expires %v", l.Timestamp, l.Expires)
	}

	// Nothing changed: nothing is published.
	clock.Add(time.Hour)
	if s, err := b.Publish(ctx, false); err != nil || s != 0 {
		t.Errorf("Publish without a change = %d, %v", s, err)
	}
	// Near expiry (past half the validity): signed again with a new serial.
	clock.Add(2 * day)
	s3, err := b.Publish(ctx, false)
	if err != nil || s3 <= s2 {
		t.Errorf("Publish near expiry = %d, %v", s3, err)
	}
	if rec, err := st.LatestList(ctx); err != nil || rec.Serial != s3 || rec.Entries != 2 {
		t.Errorf("LatestList = %+v, %v", rec, err)
	}
}
