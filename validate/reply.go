package validate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits on what an SMTP server may send. RFC 5321 §4.5.3.1.5 caps a reply
// line at 512 octets; real servers stay far below these.
const (
	maxReplyLine  = 1000     // bytes per reply line, CRLF included
	maxReplyLines = 100      // lines per (multi-line) reply
	maxConnBytes  = 64 << 10 // bytes read from one connection, before and after TLS each
)

// Errors of the reply reader.
var (
	ErrReplyLineTooLong  = errors.New("validate: SMTP reply line too long")
	ErrReplyTooManyLines = errors.New("validate: SMTP reply has too many lines")
	ErrReplyMalformed    = errors.New("validate: malformed SMTP reply")
	ErrTooMuchData       = errors.New("validate: server sent too much data")
)

// reply is one SMTP reply: its code and the text of each line.
type reply struct {
	code  int
	lines []string
}

func (r reply) String() string {
	if len(r.lines) == 0 {
		return fmt.Sprintf("%d", r.code)
	}
	s := fmt.Sprintf("%d %s", r.code, r.lines[0])
	if len(r.lines) > 1 {
		s += fmt.Sprintf(" (+%d lines)", len(r.lines)-1)
	}
	return s
}

// newReplyReader returns a reader of replies from rd: bounded lines, and
// at most maxConnBytes from rd in all.
func newReplyReader(rd io.Reader) *bufio.Reader {
	return bufio.NewReaderSize(&capReader{r: rd, n: maxConnBytes}, maxReplyLine)
}

// capReader fails with ErrTooMuchData after n bytes.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, ErrTooMuchData
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

// readReply reads one reply (RFC 5321 §4.2): lines "CODE-text" then
// "CODE text" (or "CODE" alone), the same three-digit code on every line.
// Bare LF line ends are tolerated.
func readReply(br *bufio.Reader) (reply, error) {
	var r reply
	for n := 0; ; n++ {
		if n >= maxReplyLines {
			return r, ErrReplyTooManyLines
		}
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return r, ErrReplyLineTooLong
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return r, err
		}
		line := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
		if len(line) < 3 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) || line[0] < '2' || line[0] > '5' {
			return r, fmt.Errorf("%w: %q", ErrReplyMalformed, truncate(line, 40))
		}
		code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
		if n > 0 && code != r.code {
			return r, fmt.Errorf("%w: code changed from %d to %d", ErrReplyMalformed, r.code, code)
		}
		r.code = code
		last := true
		text := ""
		if len(line) > 3 {
			switch line[3] {
			case '-':
				last = false
			case ' ':
			default:
				return r, fmt.Errorf("%w: %q", ErrReplyMalformed, truncate(line, 40))
			}
			text = line[4:]
		}
		r.lines = append(r.lines, text)
		if last {
			return r, nil
		}
	}
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
