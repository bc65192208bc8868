package dane

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary TLSA records (as they come from DNS) to
// VerifyHost against a fixed chain: it must never panic, and must only
// accept a record set that holds a usable record.
func FuzzVerify(f *testing.F) {
	valid := [2]time.Time{now.Add(-time.Hour), now.Add(time.Hour)}
	root := issue(f, nil, "Root", true, valid[0], valid[1])
	inter := issue(f, root, "Intermediate", true, valid[0], valid[1])
	leaf := issue(f, inter, "mx.example.test", false, valid[0], valid[1], "mx.example.test")
	chain := []*x509.Certificate{leaf.cert, inter.cert}
	for _, r := range []TLSA{rec(3, 1, 1, leaf.cert), rec(2, 0, 2, inter.cert), rec(3, 0, 0, leaf.cert), {1, 1, 1, make([]byte, 32)}, {3, 1, 1, nil}} {
		f.Add(r.Usage, r.Selector, r.MatchingType, r.Data)
	}
	f.Fuzz(func(t *testing.T, usage, selector, mtype uint8, data []byte) {
		r := TLSA{usage, selector, mtype, data}
		err := VerifyHost([]TLSA{r}, chain, now, "mx.example.test")
		if err == nil && !r.Usable() {
			t.Fatalf("accepted unusable record %v", r)
		}
		if err != nil && !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrNoUsableRecords) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
