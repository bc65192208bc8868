package publish

import (
	"errors"
	"strings"
	"unicode"
)

// Sentinel errors. Match them with errors.Is; the text may gain detail.
var (
	ErrNotFound       = errors.New("publish: no such list")
	ErrBadSnapshot    = errors.New("publish: incomplete snapshot")
	ErrSerialNotNewer = errors.New("publish: serial is not newer than the current one")
	ErrExportConflict = errors.New("publish: export would change a published file")

	ErrLocked       = errors.New("publish: another fetch is running")
	ErrStateDir     = errors.New("publish: state directory is not usable")
	ErrDownload     = errors.New("publish: download failed")
	ErrTooLarge     = errors.New("publish: too large")
	ErrNotAList     = errors.New("publish: server did not return a policy list")
	ErrBadSignature = errors.New("publish: list signature does not verify with the pinned key")
	ErrBadList      = errors.New("publish: signed list does not parse")
	ErrRefusedList  = errors.New("publish: signed list refused")
	ErrRollback     = errors.New("publish: list is older than the installed one, refusing a rollback")
	ErrSameSerial   = errors.New("publish: list has the installed serial but different content")
	ErrExpired      = errors.New("publish: policy list has expired")
	ErrEmptyList    = errors.New("publish: the list enforces no domain while the installed one does, refusing to install it")
	ErrInstall      = errors.New("publish: installing the policy failed")
	ErrPostmap      = errors.New("publish: postmap failed")
	ErrReload       = errors.New("publish: reload command failed")
)

// maxServerText bounds the text of a server (a status line, a redirect's
// location) quoted in an error: enough to recognise it, too little to flood
// a terminal or a cron mail.
const maxServerText = 200

// serverText makes text a server sent fit an operator's one-line error: no
// control characters (C0, DEL, C1: no terminal escapes, no bells, no line
// breaks; tabs and line breaks become a space), valid UTF-8, and at most
// about maxServerText bytes ("…" marks a cut).
func serverText(s string) string {
	var b strings.Builder
	for i, r := range s {
		if b.Len() >= maxServerText {
			if i < len(s) {
				b.WriteString("…")
			}
			break
		}
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			if b.Len() > 0 && !strings.HasSuffix(b.String(), " ") {
				b.WriteByte(' ')
			}
		case unicode.IsControl(r):
		default:
			b.WriteRune(r) // an invalid byte is written as U+FFFD
		}
	}
	return b.String()
}

// serverError is an error whose text comes from a server (the http
// client's, which quotes a redirect's location): its Error is cleaned with
// serverText, and errors.Is still sees the error inside (a timeout, a
// cancellation).
type serverError struct{ err error }

func (e serverError) Error() string { return serverText(e.err.Error()) }
func (e serverError) Unwrap() error { return e.err }
