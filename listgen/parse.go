package listgen

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// ParseError is a list that Parse (or Marshal) refuses: the JSON path of
// the offending value, its byte offset in the input (-1 when not parsing),
// and what is wrong.
type ParseError struct {
	Path   string
	Offset int
	Msg    string
}

func (e *ParseError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("listgen: invalid list: %s (byte %d): %s", e.Path, e.Offset, e.Msg)
	}
	return fmt.Sprintf("listgen: invalid list: %s: %s", e.Path, e.Msg)
}

// Unwrap makes every ParseError match ErrInvalid.
func (e *ParseError) Unwrap() error { return ErrInvalid }

// Parse reads a list strictly: at most MaxSize bytes of JSON (RFC 8259)
// holding exactly the fields of the format, each once, with the types,
// forms and bounds the package documentation gives. Key order, white space
// and the order of MX patterns are free; Marshal gives the canonical form.
// Semantic checks (public suffixes, undefined aliases, dates) are Lint's.
//
// The strings of the returned list are copied out of b (into a few large
// blocks): b may be changed afterwards.
func Parse(b []byte) (*List, error) {
	if len(b) > MaxSize {
		return nil, ErrTooLarge
	}
	// p.s is b itself, read only while parsing; every string kept in the
	// list goes through p.keep.
	p := &parser{s: unsafe.String(unsafe.SliceData(b), len(b))}
	l, err := p.list()
	if err != nil {
		return nil, err
	}
	return l, nil
}

// parser is a strict recursive-descent JSON reader for exactly this schema.
// Strings without escapes are sliced from s without copying.
type parser struct {
	s     string
	i     int
	mxs   []string // slab from which policies' MX slices are cut
	block []byte   // where keep copies strings to
}

// keepBlock is the size of the blocks that keep copies strings into.
const keepBlock = 1 << 20

// keep returns a copy of s, a part of the input: only the strings the list
// keeps are copied (about 40% of a canonical list), into large blocks, not
// one string each.
func (p *parser) keep(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > cap(p.block)-len(p.block) {
		p.block = make([]byte, 0, max(keepBlock, len(s)))
	}
	start := len(p.block)
	p.block = append(p.block, s...)
	return unsafe.String(&p.block[start], len(s)) // never written again
}

func (p *parser) fail(path string, format string, a ...any) *ParseError {
	return &ParseError{Path: path, Offset: p.i, Msg: fmt.Sprintf(format, a...)}
}

func (p *parser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next skips white space and returns the next byte, 0 at the end.
func (p *parser) next() byte {
	p.ws()
	if p.i >= len(p.s) {
		return 0
	}
	return p.s[p.i]
}

func (p *parser) expect(path string, c byte) error {
	if p.next() != c {
		return p.fail(path, "expected %q, found %s", c, p.found())
	}
	p.i++
	return nil
}

func (p *parser) found() string {
	if p.i >= len(p.s) {
		return "end of input"
	}
	c := p.s[p.i]
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// object reads '{', then calls member for each key until '}'. member must
// read the value.
func (p *parser) object(path string, member func(key string, keyOff int) error) error {
	if err := p.expect(path, '{'); err != nil {
		return err
	}
	if p.next() == '}' {
		p.i++
		return nil
	}
	for {
		if p.next() != '"' {
			return p.fail(path, "expected a quoted key, found %s", p.found())
		}
		off := p.i
		key, err := p.str(path)
		if err != nil {
			return err
		}
		if err := p.expect(path, ':'); err != nil {
			return err
		}
		if err := member(key, off); err != nil {
			return err
		}
		switch p.next() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.fail(path, "expected ',' or '}', found %s", p.found())
		}
	}
}

// str reads a JSON string (RFC 8259 §7) and rejects invalid UTF-8 and lone
// surrogates.
func (p *parser) str(path string) (string, error) {
	if p.next() != '"' {
		return "", p.fail(path, "expected a string, found %s", p.found())
	}
	p.i++
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			v := p.s[start:p.i]
			p.i++
			return v, nil
		case c == '\\':
			return p.strSlow(path, start)
		case c < 0x20:
			return "", p.fail(path, "control character in string")
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, n := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && n == 1 {
				return "", p.fail(path, "invalid UTF-8 in string")
			}
			p.i += n
		}
	}
	return "", p.fail(path, "unterminated string")
}

// strSlow continues a string that has escapes, from its start.
func (p *parser) strSlow(path string, start int) (string, error) {
	buf := []byte(p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.fail(path, "control character in string")
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", p.fail(path, "unterminated string")
			}
			e := p.s[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.fail(path, "bad \\u escape")
				}
				if utf16.IsSurrogate(r) {
					if r >= 0xdc00 || !(p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u') {
						return "", p.fail(path, "lone surrogate in \\u escape")
					}
					p.i += 2
					r2, ok := p.hex4()
					if !ok {
						return "", p.fail(path, "bad \\u escape")
					}
					r = utf16.DecodeRune(r, r2)
					if r == utf8.RuneError {
						return "", p.fail(path, "lone surrogate in \\u escape")
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", p.fail(path, "bad escape \\%c", e)
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			p.i++
		default:
			r, n := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && n == 1 {
				return "", p.fail(path, "invalid UTF-8 in string")
			}
			buf = append(buf, p.s[p.i:p.i+n]...)
			p.i += n
		}
	}
	return "", p.fail(path, "unterminated string")
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.s[p.i : p.i+4]) {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// serial reads a non-negative integer without sign, fraction or exponent.
func (p *parser) serial(path string) (int64, error) {
	p.ws()
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	digits := p.s[start:p.i]
	if digits == "" {
		return 0, p.fail(path, "expected a non-negative integer, found %s", p.found())
	}
	if len(digits) > 1 && digits[0] == '0' {
		return 0, p.fail(path, "leading zero in number")
	}
	if p.i < len(p.s) && (p.s[p.i] == '.' || p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		return 0, p.fail(path, "serial must be an integer")
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, p.fail(path, "serial out of range")
	}
	return n, nil
}

func (p *parser) time(path string) (time.Time, error) {
	off := p.i
	s, err := p.str(path)
	if err != nil {
		return time.Time{}, err
	}
	t, err := parseTime(s)
	if err != nil {
		return time.Time{}, &ParseError{Path: path, Offset: off, Msg: err.Error()}
	}
	return t, nil
}

// parseTime accepts exactly "YYYY-MM-DDTHH:MM:SSZ".
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil || len(s) != len(timeLayout) || t.Format(timeLayout) != s {
		return time.Time{}, fmt.Errorf("time %q is not in the form 2006-01-02T15:04:05Z (UTC, whole seconds)", s)
	}
	if t.Year() < 1 {
		return time.Time{}, fmt.Errorf("time %q: year out of range 0001-9999", s)
	}
	return t, nil
}

const (
	fVersion = 1 << iota
	fSerial
	fTimestamp
	fExpires
	fAuthor
	fAliases
	fPolicies
	fAll = fVersion | fSerial | fTimestamp | fExpires | fAuthor | fAliases | fPolicies
)

var topFields = []struct {
	name string
	bit  int
}{
	{"version", fVersion}, {"serial", fSerial}, {"timestamp", fTimestamp}, {"expires", fExpires},
	{"author", fAuthor}, {"policy-aliases", fAliases}, {"policies", fPolicies},
}

func (p *parser) list() (*List, error) {
	l := &List{}
	seen := 0
	err := p.object("$", func(key string, keyOff int) error {
		path := "$." + key
		bit := 0
		for _, f := range topFields {
			if f.name == key {
				bit = f.bit
			}
		}
		if bit == 0 {
			return &ParseError{Path: "$", Offset: keyOff, Msg: fmt.Sprintf("unknown field %q", key)}
		}
		if seen&bit != 0 {
			return &ParseError{Path: path, Offset: keyOff, Msg: "duplicate field"}
		}
		seen |= bit
		var err error
		switch bit {
		case fVersion:
			off := p.i
			if l.Version, err = p.str(path); err == nil && l.Version != FormatVersion {
				err = &ParseError{Path: path, Offset: off, Msg: fmt.Sprintf("unsupported version %q (this reader knows %q)", l.Version, FormatVersion)}
			}
			l.Version = FormatVersion // not a part of the input
		case fSerial:
			l.Serial, err = p.serial(path)
		case fTimestamp:
			l.Timestamp, err = p.time(path)
		case fExpires:
			l.Expires, err = p.time(path)
		case fAuthor:
			off := p.i
			if l.Author, err = p.str(path); err == nil {
				if e := checkAuthor(l.Author); e != nil {
					err = &ParseError{Path: path, Offset: off, Msg: e.Error()}
				}
			}
			l.Author = p.keep(l.Author)
		case fAliases:
			l.PolicyAliases, err = p.policies("policy-aliases", true)
		case fPolicies:
			l.Policies, err = p.policies("policies", false)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if p.next() != 0 {
		return nil, p.fail("$", "data after the list")
	}
	if seen != fAll {
		for _, f := range topFields {
			if seen&f.bit == 0 {
				return nil, &ParseError{Path: "$", Offset: p.i, Msg: fmt.Sprintf("missing field %q", f.name)}
			}
		}
	}
	return l, nil
}

func (p *parser) policies(section string, isAliases bool) (map[string]Policy, error) {
	if !isAliases {
		return p.domainPolicies()
	}
	m := make(map[string]Policy, p.guessEntries(isAliases))
	member := func(key string, keyOff int) error {
		if err := checkAliasName(key); err != nil {
			return &ParseError{Path: keyPath(section, key), Offset: keyOff, Msg: err.Error()}
		}
		pol, err := p.policy(section, key, isAliases)
		if err != nil {
			return err
		}
		// One map operation: a duplicate key leaves the length unchanged.
		n := len(m)
		m[p.keep(key)] = pol
		if len(m) == n {
			return &ParseError{Path: keyPath(section, key), Offset: keyOff, Msg: "duplicate key"}
		}
		return nil
	}
	return m, p.object("$."+section, member)
}

// parsedEntry is a domain's policy as read, with the offset of its key.
type parsedEntry struct {
	entry
	off int
}

// parseChunk is the number of entries the reader hands to the map builder
// at a time.
var parseChunk = 1024

// domainPolicies reads the policies object while another goroutine makes
// the map and fills it, in chunks of entries in file order: building the
// map is about half the work. The builder stops at the first duplicate
// key; since every entry it gets was read before any error of the reader,
// that duplicate, if any, is the error a sequential read would report.
func (p *parser) domainPolicies() (map[string]Policy, error) {
	const section = "policies"
	free := make(chan []parsedEntry, 4)
	for range cap(free) {
		free <- make([]parsedEntry, 0, parseChunk)
	}
	work := make(chan []parsedEntry, cap(free))
	var m map[string]Policy
	var dup *ParseError
	done := make(chan struct{})
	go func() {
		defer close(done)
		m = make(map[string]Policy, p.guessEntries(false))
		for es := range work {
			for _, e := range es {
				if dup != nil {
					break
				}
				// One map operation: a duplicate key leaves the length unchanged.
				n := len(m)
				m[e.key] = e.p
				if len(m) == n {
					dup = &ParseError{Path: keyPath(section, e.key), Offset: e.off, Msg: "duplicate key"}
				}
			}
			free <- es[:0]
		}
	}()
	buf := <-free
	member := func(key string, keyOff int) error {
		if err := checkHostname(key); err != nil {
			return &ParseError{Path: keyPath(section, key), Offset: keyOff, Msg: err.Error()}
		}
		pol, err := p.policy(section, key, false)
		if err != nil {
			return err
		}
		buf = append(buf, parsedEntry{entry{p.keep(key), pol}, keyOff})
		if len(buf) == cap(buf) {
			work <- buf
			buf = <-free
		}
		return nil
	}
	err := p.object("$."+section, member)
	work <- buf
	close(work)
	<-done
	if dup != nil {
		return nil, dup
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// guessEntries sizes the policies map from the input size (about 100 bytes
// per entry in practice), bounded.
func (p *parser) guessEntries(isAliases bool) int {
	if isAliases {
		return 8
	}
	return min(len(p.s)/128, 4<<20)
}

func (p *parser) policy(section, key string, isAlias bool) (Policy, error) {
	pol, err := p.policyBody(isAlias)
	if err != nil {
		err.Path = keyPath(section, key) + err.Path
		return pol, err
	}
	return pol, nil
}

// policyBody reads one policy object; error paths are relative to it.
func (p *parser) policyBody(isAlias bool) (Policy, *ParseError) {
	var pol Policy
	start := p.i
	if err := p.expect("", '{'); err != nil {
		return pol, err.(*ParseError)
	}
	seen := 0
	if p.next() == '}' {
		p.i++
	} else {
		for {
			fieldOff := p.i
			if p.next() != '"' {
				return pol, p.fail("", "expected a quoted key, found %s", p.found())
			}
			field, err := p.str("")
			if err != nil {
				return pol, err.(*ParseError)
			}
			var bit int
			var path string
			switch field {
			case "mode":
				bit, path = 1, ".mode"
			case "mxs":
				bit, path = 2, ".mxs"
			case "policy-alias":
				bit, path = 4, ".policy-alias"
			default:
				return pol, &ParseError{Path: "", Offset: fieldOff, Msg: fmt.Sprintf("unknown field %q", field)}
			}
			if seen&bit != 0 {
				return pol, &ParseError{Path: path, Offset: fieldOff, Msg: "duplicate field"}
			}
			seen |= bit
			if err := p.expect(path, ':'); err != nil {
				return pol, err.(*ParseError)
			}
			off := p.i
			switch bit {
			case 1:
				m, err := p.str(path)
				if err != nil {
					return pol, err.(*ParseError)
				}
				switch m { // intern
				case ModeEnforce:
					pol.Mode = ModeEnforce
				case ModeTesting:
					pol.Mode = ModeTesting
				default:
					return pol, &ParseError{Path: path, Offset: off, Msg: fmt.Sprintf("mode must be %q or %q, not %q", ModeTesting, ModeEnforce, m)}
				}
			case 2:
				mxs, err := p.mxList()
				if err != nil {
					return pol, err
				}
				pol.MXs = mxs
			case 4:
				a, err := p.str(path)
				if err != nil {
					return pol, err.(*ParseError)
				}
				if a == "" {
					return pol, &ParseError{Path: path, Offset: off, Msg: "empty policy-alias"}
				}
				pol.PolicyAlias = p.keep(a)
			}
			c := p.next()
			p.i++
			if c == '}' {
				break
			}
			if c != ',' {
				p.i--
				return pol, p.fail("", "expected ',' or '}', found %s", p.found())
			}
		}
	}
	if e := checkPolicyShape(pol, isAlias); e != nil {
		e.Offset = start
		return pol, e
	}
	return pol, nil
}

// mxList reads the mxs array; error paths are relative to the policy.
func (p *parser) mxList() ([]string, *ParseError) {
	if err := p.expect(".mxs", '['); err != nil {
		return nil, err.(*ParseError)
	}
	if len(p.mxs) < MaxMXs {
		p.mxs = make([]string, 4096)
	}
	if p.next() == ']' {
		p.i++
		return nil, nil
	}
	for n := 0; ; {
		if n == MaxMXs {
			return nil, p.fail(".mxs", "more than %d MX patterns", MaxMXs)
		}
		off := p.i
		mx, err := p.str("")
		if err != nil {
			pe := err.(*ParseError)
			pe.Path = fmt.Sprintf(".mxs[%d]", n)
			return nil, pe
		}
		if err := checkPattern(mx); err != nil {
			return nil, &ParseError{Path: fmt.Sprintf(".mxs[%d]", n), Offset: off, Msg: err.Error()}
		}
		for _, prev := range p.mxs[:n] {
			if prev == mx {
				return nil, &ParseError{Path: fmt.Sprintf(".mxs[%d]", n), Offset: off, Msg: fmt.Sprintf("duplicate MX pattern %q", mx)}
			}
		}
		p.mxs[n] = p.keep(mx)
		n++
		switch p.next() {
		case ',':
			p.i++
		case ']':
			p.i++
			out := p.mxs[:n:n]
			p.mxs = p.mxs[n:]
			return out, nil
		default:
			return nil, p.fail(".mxs", "expected ',' or ']', found %s", p.found())
		}
	}
}
