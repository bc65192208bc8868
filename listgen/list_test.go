package listgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", path, got)
	}
}

// repoRoot walks up from the package directory to go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sampleList(t testing.TB) *List {
	t.Helper()
	l, err := Parse(readFile(t, "testdata/sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestMarshalCanonical(t *testing.T) {
	b := readFile(t, "testdata/sample.json")
	l, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Errorf("Marshal(Parse(sample)) differs from sample:\n%s", got)
	}

	// The same bytes as encoding/json's MarshalIndent of the same data
	// (maps sort their keys; the struct's fields are written in key order).
	type jpol struct {
		Mode        string   `json:"mode,omitempty"`
		MXs         []string `json:"mxs,omitempty"`
		PolicyAlias string   `json:"policy-alias,omitempty"`
	}
	conv := func(m map[string]Policy) map[string]jpol {
		out := map[string]jpol{}
		for k, p := range m {
			out[k] = jpol(p)
		}
		return out
	}
	generic := map[string]any{
		"author": l.Author, "expires": l.Expires.Format(timeLayout), "timestamp": l.Timestamp.Format(timeLayout),
		"version": l.Version, "serial": l.Serial,
		"policies": conv(l.Policies), "policy-aliases": conv(l.PolicyAliases),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(generic); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), b) {
		t.Errorf("encoding/json writes something else:\n%s", buf.Bytes())
	}
}

func TestMarshalNormalises(t *testing.T) {
	l := &List{
		Version:   FormatVersion,
		Serial:    7,
		Timestamp: time.Date(2026, 11, 23, 8, 0, 0, 999, time.FixedZone("x", 3600)),
		Expires:   time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Author:    "a\tb\x01\"\\é<>",
		Policies: map[string]Policy{
			"b.example.com": {Mode: ModeTesting, MXs: []string{"mx2.example.com", "mx1.example.com"}},
		},
	}
	b, err := Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"timestamp": "2026-11-23T07:00:00Z"`,
		`"author": "a\tb\u0001\"\\é<>"`,
		"\"mx1.example.com\",\n        \"mx2.example.com\"",
		`"policy-aliases": {}`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("missing %q in\n%s", want, b)
		}
	}
	if l.Policies["b.example.com"].MXs[0] != "mx2.example.com" {
		t.Error("Marshal changed the caller's slice")
	}
	l2, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Author != l.Author {
		t.Errorf("author round trip: %q", l2.Author)
	}
}

func TestMarshalRefuses(t *testing.T) {
	base := func() *List {
		return &List{Version: FormatVersion, Timestamp: time.Unix(0, 0), Expires: time.Unix(1, 0),
			Policies: map[string]Policy{}, PolicyAliases: map[string]Policy{}}
	}
	tests := []struct {
		name     string
		mod      func(*List)
		wantPath string
	}{
		{"version", func(l *List) { l.Version = "0.1" }, "$.version"},
		{"serial", func(l *List) { l.Serial = -1 }, "$.serial"},
		{"author utf8", func(l *List) { l.Author = "\xff" }, "$.author"},
		{"domain", func(l *List) { l.Policies["Example.com"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.example.com"}} }, `$.policies["Example.com"]`},
		{"mode", func(l *List) { l.Policies["example.com"] = Policy{Mode: "on", MXs: []string{"mx.example.com"}} }, `$.policies["example.com"].mode`},
		{"pattern", func(l *List) { l.Policies["example.com"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.*.com"}} }, `$.policies["example.com"].mxs[0]`},
		{"dup mx", func(l *List) {
			l.Policies["example.com"] = Policy{Mode: ModeEnforce, MXs: []string{"a.example.com", "a.example.com"}}
		}, `$.policies["example.com"].mxs`},
		{"alias chain", func(l *List) { l.PolicyAliases["x"] = Policy{PolicyAlias: "y"} }, `$.policy-aliases["x"].policy-alias`},
		{"year", func(l *List) { l.Expires = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "$.expires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := base()
			tt.mod(l)
			_, err := Marshal(l)
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Path != tt.wantPath || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a ParseError at %s", err, tt.wantPath)
			}
		})
	}
}

func TestParse(t *testing.T) {
	good := string(readFile(t, "testdata/sample.json"))
	tests := []struct {
		name     string
		in       string
		wantPath string // "" = accepted
	}{
		{"sample", good, ""},
		{"compact and reordered", `{"version":"1","serial":0,"timestamp":"2026-01-01T00:00:00Z","expires":"2026-01-02T00:00:00Z","author":"","policy-aliases":{},"policies":{"a.example.com":{"mxs":["b.example.com","*.a.example.com"],"mode":"testing"}}}`, ""},
		{"escapes", strings.Replace(good, `"starttls-preload test \"sample\""`, `"\u00e9\ud83d\ude00\/\n"`, 1), ""},
		{"unknown top field", strings.Replace(good, `"serial": 42,`, `"serial": 42, "extra": 1,`, 1), "$"},
		{"duplicate top field", strings.Replace(good, `"serial": 42,`, `"serial": 42, "serial": 43,`, 1), "$.serial"},
		{"missing field", strings.Replace(good, `"serial": 42,`, ``, 1), "$"},
		{"duplicate domain", strings.Replace(good, `"example.org": {`, `"example.com": {`, 1), `$.policies["example.com"]`},
		{"duplicate policy field", strings.Replace(good, `"mode": "testing",`, `"mode": "testing", "mode": "testing",`, 1), `$.policies["example.org"].mode`},
		{"unknown policy field", strings.Replace(good, `"mode": "testing",`, `"mode": "testing", "x": 1,`, 1), `$.policies["example.org"]`},
		{"bad mode", strings.Replace(good, `"mode": "testing"`, `"mode": "Testing"`, 1), `$.policies["example.org"].mode`},
		{"upper-case domain", strings.Replace(good, `"example.org"`, `"Example.org"`, 1), `$.policies["Example.org"]`},
		{"trailing dot", strings.Replace(good, `"example.org"`, `"example.org."`, 1), `$.policies["example.org."]`},
		{"single label", strings.Replace(good, `"example.org"`, `"localhost"`, 1), `$.policies["localhost"]`},
		{"ip", strings.Replace(good, `"example.org"`, `"192.0.2.1"`, 1), `$.policies["192.0.2.1"]`},
		{"eff suffix pattern", strings.Replace(good, `"*.mail.example.com"`, `".mail.example.com"`, 1), `$.policies["example.com"].mxs[0]`},
		{"deep wildcard", strings.Replace(good, `"*.mail.example.com"`, `"*.*.example.com"`, 1), `$.policies["example.com"].mxs[0]`},
		{"dup mx", strings.Replace(good, `"mx1.example.com"`, `"*.mail.example.com"`, 1), `$.policies["example.com"].mxs[1]`},
		{"empty mxs", strings.Replace(good, "[\n        \"mx.example.org\"\n      ]", "[]", 1), `$.policies["example.org"].mxs`},
		{"alias and mode", strings.Replace(good, `"policy-alias": "hosted"`, `"policy-alias": "hosted", "mode": "enforce"`, 1), `$.policies["example.net"].policy-alias`},
		{"alias chain", strings.Replace(good, "\"hosted\": {\n      \"mode\": \"enforce\",\n      \"mxs\": [\n        \"*.mx.hosting.example\"\n      ]\n    }", `"hosted": {"policy-alias": "x"}`, 1), `$.policy-aliases["hosted"].policy-alias`},
		{"version", strings.Replace(good, `"version": "1"`, `"version": "0.1"`, 1), "$.version"},
		{"serial negative", strings.Replace(good, `"serial": 42`, `"serial": -1`, 1), "$.serial"},
		{"serial float", strings.Replace(good, `"serial": 42`, `"serial": 42.0`, 1), "$.serial"},
		{"serial leading zero", strings.Replace(good, `"serial": 42`, `"serial": 042`, 1), "$.serial"},
		{"serial overflow", strings.Replace(good, `"serial": 42`, `"serial": 9223372036854775808`, 1), "$.serial"},
		{"time offset", strings.Replace(good, `"2026-11-23T07:00:00Z"`, `"2026-11-23T08:00:00+01:00"`, 1), "$.timestamp"},
		{"time fraction", strings.Replace(good, `"2026-11-23T07:00:00Z"`, `"2026-11-23T07:00:00.5Z"`, 1), "$.timestamp"},
		{"year zero", strings.Replace(good, `"2026-11-23T07:00:00Z"`, `"0000-01-01T00:00:00Z"`, 1), "$.timestamp"},
		{"time epoch", strings.Replace(good, `"2026-11-23T07:00:00Z"`, `1795417200`, 1), "$.timestamp"},
		{"trailing data", good + "{}", "$"},
		{"trailing comma", strings.Replace(good, `"version": "1"`, `"version": "1",`, 1), "$"},
		{"invalid utf8", strings.Replace(good, `test`, "te\xffst", 1), "$.author"},
		{"lone surrogate", strings.Replace(good, `test`, `\ud800`, 1), "$.author"},
		{"control char", strings.Replace(good, `test`, "a\x01b", 1), "$.author"},
		{"bad escape", strings.Replace(good, `test`, `\x`, 1), "$.author"},
		{"truncated", good[:len(good)/2], `$.policies["example.org"].mxs[0]`},
		{"empty", "", "$"},
		{"array", "[]", "$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse([]byte(tt.in))
			if tt.wantPath == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if _, err := Marshal(l); err != nil {
					t.Fatalf("Marshal of a parsed list: %v", err)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a ParseError", err)
			}
			if pe.Path != tt.wantPath {
				t.Errorf("path = %s, want %s (%v)", pe.Path, tt.wantPath, err)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	b := make([]byte, MaxSize+1)
	if _, err := Parse(b); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestResolve(t *testing.T) {
	l := sampleList(t)
	tests := []struct {
		domain string
		ok     bool
		mode   string
		mx     string
	}{
		{"example.com", true, ModeEnforce, "*.mail.example.com"},
		{"EXAMPLE.com.", true, ModeEnforce, "*.mail.example.com"},
		{"example.net", true, ModeEnforce, "*.mx.hosting.example"},
		{"sub.example.com", false, "", ""},
		{"example.edu", false, "", ""},
	}
	for _, tt := range tests {
		p, ok := l.Resolve(tt.domain)
		if ok != tt.ok || p.Mode != tt.mode || (tt.ok && p.MXs[0] != tt.mx) || p.PolicyAlias != "" {
			t.Errorf("Resolve(%q) = %+v, %v", tt.domain, p, ok)
		}
	}
	l.Policies["example.net"] = Policy{PolicyAlias: "nope"}
	if _, ok := l.Resolve("example.net"); ok {
		t.Error("an undefined alias resolved")
	}
}

func TestMatches(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"mx1.example.com", "mx1.example.com", true},
		{"mx1.example.com", "MX1.Example.COM.", true},
		{"mx1.example.com", "mx2.example.com", false},
		// RFC 8461 §4.1: exactly one leftmost label.
		{"*.mail.example.com", "a.mail.example.com", true},
		{"*.mail.example.com", "mail.example.com", false},
		{"*.mail.example.com", "a.b.mail.example.com", false},
		{"*.mail.example.com", ".mail.example.com", false},
		{"*.mail.example.com", "amail.example.com", false},
		// Names are compared as A-labels, whichever form each is in.
		{"*.xn--bcher-kva.example", "mx.bücher.example", true},
		{"*.xn--bcher-kva.example", "MX.BÜCHER.example.", true},
		{"mx.xn--bcher-kva.example", "mx.bücher.example", true},
		{"mx.bücher.example", "mx.xn--bcher-kva.example", true},
		{"*.bücher.example", "mx.xn--bcher-kva.example", true},
		{"mx.xn--bcher-kva.example", "mx.bucher.example", false},
		{"*.example", "bad\u00a0label.example", false},
	}
	for _, tt := range tests {
		if got := Matches(tt.pattern, tt.host); got != tt.want {
			t.Errorf("Matches(%q, %q) = %v", tt.pattern, tt.host, got)
		}
		if got := (Policy{MXs: []string{tt.pattern}}).MatchesAny(tt.host); got != tt.want {
			t.Errorf("Policy{MXs: %q}.MatchesAny(%q) = %v", tt.pattern, tt.host, got)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Example.COM.", "example.com"},
		{"bücher.de", "xn--bcher-kva.de"},
		{".mail.example.com", "*.mail.example.com"},
		{"*.Mail.Example.com", "*.mail.example.com"},
		{"exa mple.com", ""},
		{"com", ""},
		{"a..b", ""},
	}
	for _, tt := range tests {
		got, err := NormalizePattern(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("NormalizePattern(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizePattern(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSortedPolicies(t *testing.T) {
	m := map[string]Policy{}
	keys := []string{"a", "ab", "a.b", "abcdefgh", "abcdefgh.a", "abcdefgg.zz", "abcdefghi", "b", "a-", "zzzzzzzzzzzz", "abcdefgh.", ""}
	for i := range 500 {
		keys = append(keys, fmt.Sprintf("k%d.example%d.com", i*7919%1000, i%3))
	}
	for _, k := range keys {
		m[k] = Policy{Mode: k}
	}
	want := slices.Sorted(maps.Keys(m))
	es := sortedPolicies(m)
	if len(es) != len(want) {
		t.Fatalf("%d entries, want %d", len(es), len(want))
	}
	for i, e := range es {
		if e.key != want[i] || e.p.Mode != e.key {
			t.Fatalf("entry %d = %q (%q), want %q", i, e.key, e.p.Mode, want[i])
		}
	}
}

// The example in the package documentation is a canonical list.
func TestDocExample(t *testing.T) {
	doc := string(readFile(t, "doc.go"))
	_, rest, ok := strings.Cut(doc, "Example, a complete list:\n//\n")
	if !ok {
		t.Fatal("no example in doc.go")
	}
	var b strings.Builder
	for line := range strings.Lines(rest) {
		text, ok := strings.CutPrefix(line, "//\t")
		if !ok {
			break
		}
		b.WriteString(text)
	}
	ex := []byte(b.String())
	l, err := Parse(ex)
	if err != nil {
		t.Fatal(err)
	}
	if ps := LintBytes(ex); len(ps) != 0 {
		t.Errorf("doc example: %v", ps)
	}
	if p, ok := l.Resolve("example.net"); !ok || p.Mode != ModeTesting {
		t.Errorf("doc example: example.net = %+v", p)
	}
}

// The two-goroutine writer gives the same bytes and the same first error
// as the sequential one.
func TestMarshalParallel(t *testing.T) {
	l := genList(3000)
	l.PolicyAliases["unused"] = Policy{Mode: ModeTesting, MXs: []string{"b.example.com", "a.example.com"}}
	old := parallelMin
	t.Cleanup(func() { parallelMin = old })
	parallelMin = 1 << 30
	seq, err := Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	parallelMin = 2
	par, err := Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(seq, par) {
		t.Fatal("parallel Marshal differs from sequential")
	}
	if _, err := Parse(par); err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[string]Policy{l.Policies, l.PolicyAliases} {
		if _, err, ok := appendEntriesParallel([]byte("{\n"), "x", sortedPolicies(m), len(m) < 10); err != nil || !ok {
			t.Fatalf("entry sizes are not exact: err %v, ok %v", err, ok)
		}
	}
	// Errors in both halves: the first in output order wins.
	keys := slices.Sorted(maps.Keys(l.Policies))
	l.Policies[keys[10]] = Policy{Mode: "bad", MXs: []string{"mx.example.com"}}
	l.Policies[keys[2900]] = Policy{Mode: "bad", MXs: []string{"mx.example.com"}}
	for _, min := range []int{1 << 30, 2} {
		parallelMin = min
		_, err := Marshal(l)
		var pe *ParseError
		if !errors.As(err, &pe) || !strings.Contains(pe.Path, keys[10]) {
			t.Errorf("parallelMin %d: err = %v, want the error of %s", min, err, keys[10])
		}
	}
}

// The parsed list does not share the input: changing it afterwards
// changes nothing.
func TestParseCopies(t *testing.T) {
	b := readFile(t, "testdata/sample.json")
	l, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'x'
	}
	if got, err := Marshal(l); err != nil || !bytes.Equal(got, want) {
		t.Errorf("the list changed with its input: %v\n%s", err, got)
	}
}

// Parse reports the first problem in file order although another
// goroutine builds the map: a duplicate key before a later error, an error
// before a later duplicate, across chunks of entries.
func TestParseFirstError(t *testing.T) {
	old := parseChunk
	t.Cleanup(func() { parseChunk = old })
	parseChunk = 3
	big, err := Marshal(genList(300))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(big), "\n")
	var keyLines []int // lines that start a policy entry
	for i, line := range lines {
		if strings.HasPrefix(line, "    \"") && strings.HasSuffix(line, "\": {\n") {
			keyLines = append(keyLines, i)
		}
	}
	edit := func(f func(lines []string)) []byte {
		c := slices.Clone(lines)
		f(c)
		return []byte(strings.Join(c, ""))
	}
	early, late := keyLines[20], keyLines[200]
	earlyKey := strings.Trim(strings.TrimSpace(lines[early]), `":{ `)
	lateKey := strings.Trim(strings.TrimSpace(lines[late]), `":{ `)
	tests := []struct {
		name string
		in   []byte
		want string // in the error
	}{
		{"duplicate", edit(func(c []string) { c[late] = c[early] }), strconv.Quote(earlyKey) + `] (byte`},
		{"duplicate, then a bad key", edit(func(c []string) {
			c[keyLines[100]] = c[early]
			c[late] = strings.Replace(c[late], "\"", "\"-", 1)
		}), "duplicate key"},
		{"bad key, then a duplicate", edit(func(c []string) {
			c[keyLines[100]] = strings.Replace(c[keyLines[100]], "\"", "\"-", 1)
			c[late] = c[early]
		}), "starts or ends with a hyphen"},
		{"bad key late", edit(func(c []string) { c[late] = strings.Replace(c[late], "\"", "\"-", 1) }), strconv.Quote("-" + lateKey)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %s", err, tt.want)
			}
		})
	}
	l, err := Parse(big)
	if err != nil || len(l.Policies) != 300 {
		t.Fatalf("%v, %d domains", err, len(l.Policies))
	}
}
