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

// FuzzEscape feeds any remote text to the escaper: what GitHub would show
// holds no HTML, no line break, no unescaped table pipe, no @mention and
// no issue reference.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"@everyone", "x|y", "<b>", "GH-1 #2 o/r#3", "a\nb", "\\@x", "&#64;x", "＠x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := esc(s)
		if strings.ContainsAny(out, "<>\n\r") {
			t.Fatalf("esc(%q) = %q", s, out)
		}
		for i := 0; i < len(out); i++ {
			if out[i] != '|' {
				continue
			}
			// Escaped: an odd run of backslashes right before it.
			k := 0
			for j := i - 1; j >= 0 && out[j] == '\\'; j-- {
				k++
			}
			if k%2 == 0 {
				t.Fatalf("esc(%q) = %q: unescaped pipe", s, out)
			}
		}
		if r := rendered(out); reMention.MatchString(r) || reReference.MatchString(r) {
			t.Fatalf("esc(%q) renders as %q", s, r)
		}
	})
}
