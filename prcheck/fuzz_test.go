package prcheck

import (
	"context"
	"strings"
	"testing"
)

// FuzzEvaluate feeds any head list to the rules: they never panic, never
// check more than the cap, and the comment stays within GitHub's limit with
// no HTML but the marker.
func FuzzEvaluate(f *testing.F) {
	f.Add(listBytes(f, "a.test"), "https://github.com/o/r/pull/1")
	f.Add([]byte(`{"version":"1"}`), "x")
	f.Add([]byte("\xff\xfe"), "")
	f.Fuzz(func(t *testing.T, head []byte, txtValue string) {
		base := listBytes(t, "listed.test")
		o := Options{AllowTestTLD: true, MaxChecked: 20, MaxListSize: 1 << 20}
		r, err := Evaluate(t.Context(), input(base, head), fakeChecker{}, txtAll{txtValue}, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Domains) > 0 && r.Count(Added)+r.Count(Changed) > 20 {
			t.Fatalf("%d domains checked", len(r.Domains))
		}
		body := Comment(r, nil, o)
		if !strings.HasPrefix(body, Marker+"\n") || strings.Count(body, "<") != 1 || len(body) > 65536 {
			t.Fatalf("unsafe comment:\n%s", body)
		}
	})
}

// txtAll answers every TXT query with one value.
type txtAll struct{ v string }

func (a txtAll) LookupTXT(_ context.Context, name string) ([]string, error) {
	return []string{a.v}, nil
}
