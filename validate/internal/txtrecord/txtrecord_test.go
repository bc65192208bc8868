package txtrecord

import (
	"errors"
	"reflect"
	"testing"
)

var (
	errNone     = errors.New("none")
	errMultiple = errors.New("multiple")
	errSyntax   = errors.New("syntax")
	grammar     = Grammar{Version: "v=STSv1", NoRecord: errNone, Multiple: errMultiple, Syntax: errSyntax}
)

func TestSelect(t *testing.T) {
	for _, tc := range []struct {
		txts   []string
		record string
		err    error
	}{
		{nil, "", errNone},
		{[]string{"v=spf1 -all", "v=STSv10; id=1"}, "", errNone},
		{[]string{"v=spf1 -all", "v=STSv1; id=1"}, "v=STSv1; id=1", nil},
		// RFC 8461 §3.1, RFC 8460 §3: only records that begin with the
		// version and ";" are counted; the others are discarded.
		{[]string{"v=STSv1; id=1", "v=STSv1"}, "v=STSv1; id=1", nil},
		{[]string{"v=STSv1 id=2", "v=STSv1;id=1", "v=STSv1 ;id=3"}, "v=STSv1;id=1", nil},
		// Nothing left but near misses: a syntax error that says why
		// senders discard the record, rather than "no record".
		{[]string{"v=STSv1"}, "", errSyntax},
		{[]string{"v=STSv1 id=1"}, "", errSyntax},
		{[]string{"v=STSv1\tid=1"}, "", errSyntax},
		{[]string{"v=STSv1 ; id=1"}, "", errSyntax},
		{[]string{"v=STSv1;id=1", "v=STSv1;id=2"}, "", errMultiple},
		{[]string{"v=STSv1;id=1", "v=STSv1;id=2", "v=STSv1"}, "", errMultiple},
	} {
		record, err := grammar.Select(tc.txts)
		if record != tc.record || !errors.Is(err, tc.err) {
			t.Errorf("Select(%q) = %q, %v; want %q, %v", tc.txts, record, err, tc.record, tc.err)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in       string
		want     []string // name=value pairs passed on
		err      string   // with NoWSP false
		noWSPErr string   // with NoWSP true, when it differs
	}{
		{in: "v=STSv1", want: []string{}},
		{in: "v=STSv1;", want: []string{}},
		{in: "v=STSv1 ;\ta=1 ; ", want: []string{"a=1"}},
		{in: "v=STSv1; a=1, b", want: []string{"a=1, b"}, noWSPErr: `syntax: white space inside field "a=1, b"`},
		{in: "v=STSv1; a==", want: []string{"a=="}},
		{in: "", err: "syntax: empty field"},
		{in: ";", err: "syntax: empty field"},
		{in: "v=STSv1;;a=1", err: "syntax: empty field"},
		{in: "v=STSv1;a=1;;", err: "syntax: empty field"},
		{in: " v=STSv1", err: `syntax: must start with "v=STSv1"`, noWSPErr: `syntax: white space inside field " v=STSv1"`},
		{in: "v=STSv2; a=1", err: `syntax: must start with "v=STSv1"`},
		{in: "v=STSv1; a", err: `syntax: field "a" has no "="`},
		{in: "v=STSv1; _a=1", err: `syntax: bad field name "_a"`},
		{in: "v=STSv1; a=1; stop=1; b", err: "stop"},
	} {
		for _, noWSP := range []bool{false, true} {
			g := grammar
			g.NoWSP = noWSP
			got := []string{}
			err := g.Parse(tc.in, func(k, v string) error {
				if k == "stop" {
					return errors.New("stop")
				}
				got = append(got, k+"="+v)
				return nil
			})
			wantErr := tc.err
			if noWSP && tc.noWSPErr != "" {
				wantErr = tc.noWSPErr
			}
			if wantErr != "" {
				if err == nil || err.Error() != wantErr {
					t.Errorf("NoWSP %v: Parse(%q) error %v, want %s", noWSP, tc.in, err, wantErr)
				}
				continue
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("NoWSP %v: Parse(%q) = %q, %v; want %q", noWSP, tc.in, got, err, tc.want)
			}
		}
	}
}

func TestValidExt(t *testing.T) {
	for _, tc := range []struct {
		s           string
		name, value bool
	}{
		{"", false, false},
		{"a", true, true},
		{"a_b-c.d", true, true},
		{"_a", false, true},
		{"abcdefghijklmnopqrstuvwxyz012345", true, true},
		{"abcdefghijklmnopqrstuvwxyz0123456", false, true},
		{"a=b", false, false},
		{"a;b", false, false},
		{"a b", false, false},
		{"a\x7f", false, false},
		{"~!:<>", false, true},
	} {
		if got := ValidExtName(tc.s); got != tc.name {
			t.Errorf("ValidExtName(%q) = %v", tc.s, got)
		}
		if got := ValidExtValue(tc.s); got != tc.value {
			t.Errorf("ValidExtValue(%q) = %v", tc.s, got)
		}
	}
}
