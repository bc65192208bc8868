package dane

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

// fuzzChain is the chain the fuzz targets verify against: leaf and
// intermediate sent, root omitted.
func fuzzChain(f *testing.F) (root, inter, leaf *certKey, chain []*x509.Certificate) {
	valid := [2]time.Time{now.Add(-time.Hour), now.Add(time.Hour)}
	root = issue(f, nil, "Root", true, valid[0], valid[1])
	inter = issue(f, root, "Intermediate", true, valid[0], valid[1])
	leaf = issue(f, inter, "mx.example.test", false, valid[0], valid[1], "mx.example.test")
	return root, inter, leaf, []*x509.Certificate{leaf.cert, inter.cert}
}

// FuzzVerify feeds arbitrary TLSA records (as they come from DNS) to
// VerifyHost against a fixed chain: it must never panic, and must only
// accept a record set that holds a usable record.
func FuzzVerify(f *testing.F) {
	root, inter, leaf, chain := fuzzChain(f)
	for _, r := range []TLSA{
		rec(3, 1, 1, leaf.cert), rec(2, 0, 2, inter.cert), rec(3, 0, 0, leaf.cert),
		{1, 1, 1, make([]byte, 32)}, {3, 1, 1, nil},
		rec(2, 0, 0, root.cert), rec(2, 1, 0, root.cert), rec(2, 1, 0, inter.cert),
	} {
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

// FuzzVerifyPair feeds two records that share a usage and a selector, the
// unit of digest algorithm agility (RFC 7671 §9): the verdict must not
// depend on their order, and a set with no usable record is never a
// mismatch.
func FuzzVerifyPair(f *testing.F) {
	_, inter, leaf, chain := fuzzChain(f)
	l256, l512 := rec(3, 1, 1, leaf.cert), rec(3, 1, 2, leaf.cert)
	i256, i512 := rec(2, 0, 1, inter.cert), rec(2, 0, 2, inter.cert)
	f.Add(uint8(3), uint8(1), uint8(1), l256.Data, uint8(2), make([]byte, 64))
	f.Add(uint8(3), uint8(1), uint8(2), l512.Data, uint8(1), make([]byte, 32))
	f.Add(uint8(3), uint8(1), uint8(0), leaf.cert.RawSubjectPublicKeyInfo, uint8(2), make([]byte, 64))
	f.Add(uint8(2), uint8(0), uint8(1), i256.Data, uint8(2), i512.Data)
	f.Add(uint8(2), uint8(0), uint8(1), i256.Data, uint8(2), make([]byte, 63))
	f.Fuzz(func(t *testing.T, usage, selector, mtype1 uint8, data1 []byte, mtype2 uint8, data2 []byte) {
		a := TLSA{usage, selector, mtype1, data1}
		b := TLSA{usage, selector, mtype2, data2}
		kind := func(err error) error {
			switch {
			case err == nil:
				return nil
			case errors.Is(err, ErrNoUsableRecords):
				return ErrNoUsableRecords
			case errors.Is(err, ErrMismatch):
				return ErrMismatch
			}
			t.Fatalf("unexpected error %v", err)
			return nil
		}
		ab := kind(VerifyHost([]TLSA{a, b}, chain, now, "mx.example.test"))
		ba := kind(VerifyHost([]TLSA{b, a}, chain, now, "mx.example.test"))
		if ab != ba {
			t.Fatalf("%v, %v: %v; reversed: %v", a, b, ab, ba)
		}
		if usable := a.Usable() || b.Usable(); usable != (ab != ErrNoUsableRecords) {
			t.Fatalf("%v, %v: usable %v but %v", a, b, usable, ab)
		}
	})
}
