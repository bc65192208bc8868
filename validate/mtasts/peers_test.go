package mtasts

import (
	"errors"
	"reflect"
	"testing"
)

// Vectors modelled on mox/maddy behaviour, and on what other MTA-STS
// implementations are tested against; where a peer departs from RFC 8461
// (a later duplicate winning, white space inside a field), the case
// follows the RFC and says so.

func TestPeerRecordVectors(t *testing.T) {
	for _, tt := range []struct {
		txts []string
		id   string
		dup  []string
		err  error
	}{
		{txts: []string{"v=STSv1; id=20160831085700Z;"}, id: "20160831085700Z"},
		{txts: []string{"v=STSv1;id=20160831085700Z"}, id: "20160831085700Z"},
		{txts: []string{"v=STSv1; id=20160831085700Z; ext=yes"}, id: "20160831085700Z"},
		{txts: []string{"v=STSv1;\tid=abc;\t"}, id: "abc"},
		{txts: []string{"v=spf1 -all", "v=STSv1; id=1", "google-site-verification=x"}, id: "1"},
		// RFC 8461 §3.2: the first id counts (a peer that keeps the last
		// would cache under "2").
		{txts: []string{"v=STSv1; id=1; id=2"}, id: "1", dup: []string{"id"}},
		// RFC 8461 §3.1: only records beginning "v=STSv1;" are counted.
		{txts: []string{"v=STSv1; id=1", "v=STSv1"}, id: "1"},
		{txts: []string{"v=STSv1; id=1", "v=STSv10; id=2"}, id: "1"},
		{txts: []string{"v=STSv1; id=1", "v=STSv1; id=2"}, err: ErrMultipleRecords},
		{txts: []string{"v=STSv2; id=1"}, err: ErrNoRecord},
		{txts: []string{"V=STSv1; id=1"}, err: ErrNoRecord},
		{txts: []string{}, err: ErrNoRecord},
		{txts: []string{"v=STSv1; id="}, err: ErrRecordSyntax},
		{txts: []string{"v=STSv1; id=a b"}, err: ErrRecordSyntax},
		{txts: []string{"v=STSv1; id=abc; =x"}, err: ErrRecordSyntax},
		{txts: []string{"v=STSv1; id=abc; ext"}, err: ErrRecordSyntax},
		{txts: []string{"v=STSv1; id=abc other"}, err: ErrRecordSyntax},
		{txts: []string{"v=STSv1; id=123456789012345678901234567890123"}, err: ErrRecordSyntax},
		{txts: []string{"v=STSv1; ext=1"}, err: ErrRecordSyntax},
		{txts: []string{"v=STSv1"}, err: ErrRecordSyntax},
	} {
		r, err := SelectRecord(tt.txts)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("SelectRecord(%q) = %+v, %v; want %v", tt.txts, r, err, tt.err)
			}
			continue
		}
		if err != nil || r.ID != tt.id || !reflect.DeepEqual(r.Duplicates, tt.dup) {
			t.Errorf("SelectRecord(%q) = %+v, %v; want id %q, duplicates %q", tt.txts, r, err, tt.id, tt.dup)
		}
	}
}

func TestPeerPolicyVectors(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want *Policy
	}{
		{"LF", "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 86400\n",
			&Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx1.example.com", "*.example.net"}, MaxAge: 86400}},
		{"CRLF, no final newline", "version: STSv1\r\nmode: testing\r\nmx: mx.example.com\r\nmax_age: 604800",
			&Policy{Version: "STSv1", Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: 604800}},
		{"white space after the colon and at the end", "version:\tSTSv1 \nmode:   none\t\nmax_age: 0\n",
			&Policy{Version: "STSv1", Mode: ModeNone, MaxAge: 0}},
		{"unknown fields ignored", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 1\nrenewal: weekly, or so\n",
			&Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 1, Extensions: []Pair{{"renewal", "weekly, or so"}}}},
		// RFC 8461 §3.2: the first mode counts (a peer that keeps the last
		// would enforce nothing here).
		{"two modes", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmode: none\nmax_age: 1\n",
			&Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 1, Duplicates: []string{"mode"}}},
		{"two max_age", "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 100\nmax_age: 31557600\n",
			&Policy{Version: "STSv1", Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: 100, Duplicates: []string{"max_age"}}},
		{"bad", "", nil},
		{"no version", "mode: enforce\nmx: mx.example.com\nmax_age: 1\n", nil},
		{"version later than STSv1", "version: STSv2\nmode: enforce\nmx: mx.example.com\nmax_age: 1\n", nil},
		{"no max_age", "version: STSv1\nmode: enforce\nmx: mx.example.com\n", nil},
		{"negative max_age", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: -1\n", nil},
		{"max_age beyond a year", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 31557601\n", nil},
		{"enforce without mx", "version: STSv1\nmode: enforce\nmax_age: 1\n", nil},
		{"mode in capitals", "version: STSv1\nmode: ENFORCE\nmx: mx.example.com\nmax_age: 1\n", nil},
		{"two wildcards", "version: STSv1\nmode: enforce\nmx: *.*.example.com\nmax_age: 1\n", nil},
		{"U-label mx", "version: STSv1\nmode: enforce\nmx: mx.bücher.example\nmax_age: 1\n", nil},
		{"equals sign instead of colon", "version=STSv1\nmode=enforce\nmx=mx.example.com\nmax_age=1\n", nil},
		{"leading white space", "version: STSv1\n mode: enforce\nmx: mx.example.com\nmax_age: 1\n", nil},
	} {
		p, err := ParsePolicy([]byte(tt.in))
		if tt.want == nil {
			if !errors.Is(err, ErrPolicySyntax) {
				t.Errorf("%s: ParsePolicy = %+v, %v; want %v", tt.name, p, err, ErrPolicySyntax)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(p, tt.want) {
			t.Errorf("%s: ParsePolicy = %+v, %v; want %+v", tt.name, p, err, tt.want)
		}
	}
}
