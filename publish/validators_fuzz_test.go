package publish

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// FuzzResponseValidators feeds the validators of a response (ETag,
// Last-Modified, Date) to what Fetch stores of them: whatever a server
// sends, a kept ETag is the server's own, at most maxValidator bytes of the
// entity-tag grammar, and a kept Last-Modified is a well-formed HTTP date
// at least a second older than Date (RFC 9110 §8.8.2.2, §8.8.3).
func FuzzResponseValidators(f *testing.F) {
	f.Add(`"abc"`, "Mon, 23 Nov 2026 07:00:00 GMT", "Mon, 23 Nov 2026 07:00:01 GMT")
	f.Add(`W/"x"`, "Mon, 23 Nov 2026 07:00:00 GMT", "Mon, 23 Nov 2026 07:00:00 GMT")
	f.Add(`"`+strings.Repeat("a", 300)+`"`, "Monday, 23-Nov-26 07:00:00 GMT", "Mon Nov 23 07:00:05 2026")
	f.Add("\"a\r\nX: y\"", "\x1b[2J", "")
	f.Fuzz(func(t *testing.T, etag, lastModified, date string) {
		h := http.Header{"Etag": {etag}, "Last-Modified": {lastModified}, "Date": {date}}
		var fe fetcher
		fe.keepValidators(h)
		if e := fe.st.ETag; e != "" {
			if e != etag || len(e) > maxValidator {
				t.Fatalf("kept ETag %q from %q", e, etag)
			}
			o := strings.TrimPrefix(e, "W/")
			if len(o) < 2 || o[0] != '"' || o[len(o)-1] != '"' || strings.ContainsFunc(o[1:len(o)-1], func(r rune) bool {
				return r < 0x21 || r == '"' || r > 0x7e
			}) {
				t.Fatalf("kept ETag %q is not an entity-tag", e)
			}
		}
		if lm := fe.st.LastModified; lm != "" {
			got, err := http.ParseTime(lm)
			d, derr := http.ParseTime(date)
			if err != nil || derr != nil || len(lm) != len(http.TimeFormat) || d.Sub(got) < time.Second {
				t.Fatalf("kept Last-Modified %q (Date %q)", lm, date)
			}
		}
	})
}

// FuzzServerText: whatever a server says, what reaches the operator has no
// control character, is valid UTF-8 and is cut short.
func FuzzServerText(f *testing.F) {
	f.Add("503 Service Unavailable")
	f.Add("500 \x1b[2J\x07\x9b")
	f.Add(strings.Repeat("é", 300))
	f.Add("\xff\xfe\r\n\t")
	f.Fuzz(func(t *testing.T, s string) {
		out := serverText(s)
		if len(out) > maxServerText+utf8.UTFMax+len("…") || !utf8.ValidString(out) || strings.ContainsFunc(out, unicode.IsControl) {
			t.Fatalf("serverText(%q) = %q", s, out)
		}
	})
}
