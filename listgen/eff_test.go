package listgen

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

func effFile(t *testing.T) []byte {
	t.Helper()
	return readFile(t, filepath.Join(repoRoot(t), "listgen", "testdata", "eff", "policy.json"))
}

// Every domain and alias of the EFF's last list survives the import, and
// the output is byte for byte the golden file.
func TestImportEFFGolden(t *testing.T) {
	in := effFile(t)
	l, err := ImportEFF(in, 1)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Policies      map[string]json.RawMessage `json:"policies"`
		PolicyAliases map[string]json.RawMessage `json:"policy-aliases"`
	}
	if err := json.Unmarshal(in, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Policies) != 926 || len(raw.PolicyAliases) != 4 {
		t.Fatalf("EFF file has %d domains and %d aliases, want 926 and 4", len(raw.Policies), len(raw.PolicyAliases))
	}
	if len(l.Policies) != 926 || len(l.PolicyAliases) != 4 {
		t.Fatalf("imported %d domains and %d aliases, want 926 and 4", len(l.Policies), len(l.PolicyAliases))
	}
	for d := range raw.Policies {
		if _, ok := l.Resolve(d); !ok {
			t.Errorf("domain %q lost", d)
		}
	}
	for a := range raw.PolicyAliases {
		if _, ok := l.PolicyAliases[a]; !ok {
			t.Errorf("alias %q lost", a)
		}
	}
	if ps := Lint(l); len(ps) != 0 {
		t.Errorf("imported list does not lint clean: %v", ps)
	}
	out, err := Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "eff-import.json", out)

	// The same input always gives the same bytes.
	for range 3 {
		l2, err := ImportEFF(in, 1)
		if err != nil {
			t.Fatal(err)
		}
		out2, _ := Marshal(l2)
		if string(out2) != string(out) {
			t.Fatal("import is not deterministic")
		}
	}
}

func TestImportEFFDates(t *testing.T) {
	tests := []struct {
		name, ts, exp string
		wantTS        time.Time
		wantErr       bool
	}{
		{"rfc3339 with offset and fraction", `"2020-05-20T10:25:12.710034-07:00"`, `"2020-06-03T10:25:12.710055-07:00"`, time.Date(2020, 5, 20, 17, 25, 12, 0, time.UTC), false},
		{"epoch seconds", `1589995512`, `1591205112`, time.Date(2020, 5, 20, 17, 25, 12, 0, time.UTC), false},
		{"zulu", `"2020-05-20T17:25:12Z"`, `"2020-06-03T17:25:12Z"`, time.Date(2020, 5, 20, 17, 25, 12, 0, time.UTC), false},
		{"not a date", `"yesterday"`, `1`, time.Time{}, true},
		{"negative epoch", `-1`, `1`, time.Time{}, true},
		{"float epoch", `1.5`, `1`, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := `{"timestamp": ` + tt.ts + `, "expires": ` + tt.exp + `, "version": "0.1", "author": "x",
				"policy-aliases": {}, "policies": {"Example.COM": {"mode": "enforce", "mxs": [".Mail.example.com", "mx.example.com"]}}}`
			l, err := ImportEFF([]byte(in), 5)
			if tt.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !l.Timestamp.Equal(tt.wantTS) || l.Serial != 5 || l.Version != FormatVersion {
				t.Errorf("got %+v", l)
			}
			p, ok := l.Resolve("example.com")
			if !ok || p.MXs[0] != "*.mail.example.com" {
				t.Errorf("policy = %+v", p)
			}
		})
	}
}

func TestImportEFFRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"unknown field": `{"timestamp": 1, "expires": 2, "version": "0.1", "author": "x", "policy-aliases": {}, "policies": {}, "extra": 1}`,
		"version":       `{"timestamp": 1, "expires": 2, "version": "1", "author": "x", "policy-aliases": {}, "policies": {}}`,
		"bad domain":    `{"timestamp": 1, "expires": 2, "version": "0.1", "author": "x", "policy-aliases": {}, "policies": {"a b.com": {"mode": "enforce", "mxs": ["mx.a.com"]}}}`,
		"bad mode":      `{"timestamp": 1, "expires": 2, "version": "0.1", "author": "x", "policy-aliases": {}, "policies": {"a.com": {"mode": "on", "mxs": ["mx.a.com"]}}}`,
		"two domains":   `{"timestamp": 1, "expires": 2, "version": "0.1", "author": "x", "policy-aliases": {}, "policies": {"a.com": {"mode": "enforce", "mxs": ["mx.a.com"]}, "A.com": {"mode": "enforce", "mxs": ["mx.a.com"]}}}`,
		"trailing":      `{"timestamp": 1, "expires": 2, "version": "0.1", "author": "x", "policy-aliases": {}, "policies": {}} {}`,
	} {
		if _, err := ImportEFF([]byte(in), 1); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
