package listgen

import (
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestLint(t *testing.T) {
	ts := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	base := func() *List {
		return &List{Version: FormatVersion, Serial: 1, Author: "a", Timestamp: ts, Expires: ts.Add(24 * time.Hour),
			Policies:      map[string]Policy{"example.com": {Mode: ModeEnforce, MXs: []string{"mx.example.com"}}},
			PolicyAliases: map[string]Policy{}}
	}
	tests := []struct {
		name string
		mod  func(*List)
		want []string
	}{
		{"good", func(*List) {}, nil},
		{"expires before timestamp", func(l *List) { l.Expires = l.Timestamp }, []string{CodeExpiresBefore}},
		{"zero times", func(l *List) { l.Timestamp, l.Expires = time.Time{}, time.Time{} }, []string{CodeExpiresBefore, CodeTimestamp}},
		{"version", func(l *List) { l.Version = "0.1" }, []string{CodeVersion}},
		{"author", func(l *List) { l.Author = " " }, []string{CodeAuthor}},
		{"public suffix", func(l *List) { l.Policies["co.uk"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.example.com"}} }, []string{CodeDomainSuffix}},
		{"private suffix", func(l *List) {
			l.Policies["github.io"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.example.com"}}
		}, []string{CodeDomainSuffix}},
		{"subdomain ok", func(l *List) {
			l.Policies["lists.example.co.uk"] = Policy{Mode: ModeTesting, MXs: []string{"mx.example.com"}}
		}, nil},
		{"unknown tld", func(l *List) {
			l.Policies["example.invalidtld"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.example.com"}}
		}, []string{CodeDomainUnknownTLD}},
		{"bad name", func(l *List) {
			l.Policies["-a.example.com"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.example.com"}}
		}, []string{CodeDomainInvalid}},
		{"bad idna", func(l *List) {
			l.Policies["xn--zz.example.com"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.example.com"}}
		}, []string{CodeDomainIDNA}},
		{"good idna", func(l *List) {
			l.Policies["xn--bcher-kva.de"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.xn--bcher-kva.de"}}
		}, nil},
		{"undefined alias", func(l *List) { l.Policies["example.org"] = Policy{PolicyAlias: "big"} }, []string{CodeAliasUndefined}},
		{"used alias", func(l *List) {
			l.Policies["example.org"] = Policy{PolicyAlias: "big"}
			l.PolicyAliases["big"] = Policy{Mode: ModeTesting, MXs: []string{"*.big.example"}}
		}, nil},
		{"unused alias", func(l *List) { l.PolicyAliases["big"] = Policy{Mode: ModeTesting, MXs: []string{"*.big.example"}} }, []string{CodeAliasUnused}},
		{"alias chain", func(l *List) {
			l.Policies["example.org"] = Policy{PolicyAlias: "big"}
			l.PolicyAliases["big"] = Policy{PolicyAlias: "big"}
		}, []string{CodeAliasChain}},
		{"alias with fields", func(l *List) {
			l.Policies["example.org"] = Policy{PolicyAlias: "big", Mode: ModeEnforce}
			l.PolicyAliases["big"] = Policy{Mode: ModeTesting, MXs: []string{"*.big.example"}}
		}, []string{CodePolicyAliasFields}},
		{"bad alias name", func(l *List) {
			l.Policies["example.org"] = Policy{PolicyAlias: "Big"}
			l.PolicyAliases["Big"] = Policy{Mode: ModeTesting, MXs: []string{"*.big.example"}}
		}, []string{CodeAliasInvalid, CodeAliasInvalid}},
		{"mode", func(l *List) { l.Policies["example.com"] = Policy{Mode: "none", MXs: []string{"mx.example.com"}} }, []string{CodeModeInvalid}},
		{"no mxs", func(l *List) { l.Policies["example.com"] = Policy{Mode: ModeEnforce} }, []string{CodeMXNone}},
		{"too many mxs", func(l *List) {
			var mxs []string
			for i := range MaxMXs + 1 {
				mxs = append(mxs, "mx"+string(rune('a'+i%26))+string(rune('a'+i/26))+".example.com")
			}
			l.Policies["example.com"] = Policy{Mode: ModeEnforce, MXs: mxs}
		}, []string{CodeMXTooMany}},
		{"mx invalid", func(l *List) { l.Policies["example.com"] = Policy{Mode: ModeEnforce, MXs: []string{".mx.example.com"}} }, []string{CodeMXInvalid}},
		{"mx duplicate", func(l *List) {
			l.Policies["example.com"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.example.com", "mx.example.com"}}
		}, []string{CodeMXDuplicate}},
		{"mx public suffix", func(l *List) { l.Policies["example.com"] = Policy{Mode: ModeEnforce, MXs: []string{"*.co.uk"}} }, []string{CodeMXSuffix}},
		{"mx idna", func(l *List) {
			l.Policies["example.com"] = Policy{Mode: ModeEnforce, MXs: []string{"*.xn--zz.example.com"}}
		}, []string{CodeMXIDNA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := base()
			tt.mod(l)
			var got []string
			for _, p := range Lint(l) {
				got = append(got, p.Code)
				if p.Path == "" || p.Message == "" {
					t.Errorf("problem without path or message: %+v", p)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("codes = %v, want %v (%v)", got, tt.want, Lint(l))
			}
		})
	}
}

func TestLintBytes(t *testing.T) {
	good := readFile(t, "testdata/sample.json")
	codes := func(b []byte) []string {
		var c []string
		for _, p := range LintBytes(b) {
			c = append(c, p.Code)
		}
		return c
	}
	if got := codes(good); len(got) != 0 {
		t.Errorf("sample: %v", LintBytes(good))
	}
	if got := codes(good[:len(good)-1]); !slices.Equal(got, []string{CodeNotCanonical}) {
		t.Errorf("no final newline: %v", got)
	}
	if got := codes([]byte("{")); !slices.Equal(got, []string{CodeParse}) {
		t.Errorf("broken: %v", got)
	}
}

// The repository's own list is valid, canonical and empty.
func TestRepositoryList(t *testing.T) {
	b := readFile(t, filepath.Join(repoRoot(t), "policy-list.json"))
	if ps := LintBytes(b); len(ps) != 0 {
		t.Errorf("policy-list.json: %v", ps)
	}
	l, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Policies) != 0 || len(l.PolicyAliases) != 0 {
		t.Error("policy-list.json lists domains that were not validated")
	}
}

// Linting on two goroutines finds the same problems in the same order.
func TestLintParallel(t *testing.T) {
	l := genList(3000)
	keys := slices.Sorted(maps.Keys(l.Policies))
	l.Policies[keys[5]] = Policy{PolicyAlias: "nope"}
	l.Policies[keys[2500]] = Policy{Mode: ModeEnforce, MXs: []string{"*.co.uk"}}
	l.Policies["co.uk"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.example.com"}}
	old, oldChunk := parallelMin, lintChunk
	t.Cleanup(func() { parallelMin, lintChunk = old, oldChunk })
	parallelMin = 1 << 30
	seq := Lint(l)
	parallelMin, lintChunk = 2, 7
	par := Lint(l)
	if len(seq) != 3 || !slices.Equal(seq, par) {
		t.Errorf("sequential %v\nparallel %v", seq, par)
	}
}

// A list that Parse returned and the caller then changed is linted in full:
// Lint trusts nothing Parse checked, whatever the size of the map.
func TestLintAfterParse(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(*List)
		sameSize bool // the map keeps the size Parse gave it
		want     []string
	}{
		{"unchanged", func(*List) {}, true, nil},
		{"invalid name added", func(l *List) {
			l.Policies["bad..example.com"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.example.com"}}
		}, false, []string{CodeDomainInvalid}},
		{"invalid name in place of a valid one", func(l *List) {
			p := l.Policies["example.org"]
			delete(l.Policies, "example.org")
			l.Policies["Example.org"] = p
		}, true, []string{CodeDomainInvalid}},
		{"invalid pattern in a replaced policy", func(l *List) {
			l.Policies["example.com"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.*.example.com"}}
		}, true, []string{CodeMXInvalid}},
		{"invalid pattern in a changed slice", func(l *List) {
			l.Policies["example.org"].MXs[0] = "mx..example.org"
		}, true, []string{CodeMXInvalid}},
	}
	b := readFile(t, filepath.Join("testdata", "sample.json"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			n := len(l.Policies)
			tt.mod(l)
			if tt.sameSize != (len(l.Policies) == n) {
				t.Fatalf("map size %d after the change, %d before: the case does not test what it says", len(l.Policies), n)
			}
			var got []string
			for _, p := range Lint(l) {
				got = append(got, p.Code)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("codes %v, want %v", got, tt.want)
			}
		})
	}
}
