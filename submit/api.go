package submit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/store"
)

// writeDoorError answers an API request with a refusal.
func writeDoorError(w http.ResponseWriter, de *doorError) {
	if de.status == http.StatusTooManyRequests || de.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter(de.retry)))
	}
	writeError(w, de.status, de.code, de.msg)
}

// decodeJSON reads a JSON body into v: application/json only, bounded,
// one object, no unknown fields.
func decodeJSON(r *http.Request, v any) *doorError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &doorError{status: http.StatusUnsupportedMediaType, code: "content_type", msg: "Send the request as application/json."}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonBodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonBodyError(err)
		}
		return badRequest("json.invalid", "The body must be one JSON object.")
	}
	return nil
}

func jsonBodyError(err error) *doorError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &doorError{status: http.StatusRequestEntityTooLarge, code: "body_too_large", msg: "The request body is too large."}
	}
	return badRequest("json.invalid", "The body is not the JSON object expected: "+quoteShort(err.Error())+".")
}

func (s *Server) apiCheck(w http.ResponseWriter, r *http.Request) {
	domain, de := s.parseDomain(r.URL.Query().Get("domain"))
	if de != nil {
		writeDoorError(w, de)
		return
	}
	res, _, de := s.check(r.Context(), r, domain)
	if de != nil {
		writeDoorError(w, de)
		return
	}
	// The object `check --json` prints, one line.
	b, err := json.Marshal(webResult(res))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "encoding failed")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(append(b, '\n'))
}

func (s *Server) apiSubmit(w http.ResponseWriter, r *http.Request) {
	var in submission
	if de := decodeJSON(r, &in); de != nil {
		writeDoorError(w, de)
		return
	}
	resp, de := s.submit(r.Context(), r, in)
	if de != nil {
		writeDoorError(w, de)
		return
	}
	writeJSON(w, http.StatusAccepted, resp)
}

func (s *Server) apiRemoval(w http.ResponseWriter, r *http.Request) {
	resp, de := s.removal(r.Context(), r, r.PathValue("domain"))
	if de != nil {
		writeDoorError(w, de)
		return
	}
	writeJSON(w, http.StatusAccepted, resp)
}

func (s *Server) apiVerify(w http.ResponseWriter, r *http.Request) {
	resp, de := s.verify(r.Context(), r, r.PathValue("domain"))
	if de != nil {
		writeDoorError(w, de)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// apiPeek says what a mailed token would prove, consuming nothing (the
// twin of the link's page).
func (s *Server) apiPeek(w http.ResponseWriter, r *http.Request) {
	domain, purpose, de := s.peek(r.Context(), r, r.PathValue("domain"), r.URL.Query().Get("token"))
	if de != nil {
		writeDoorError(w, de)
		return
	}
	out := map[string]any{"domain": domain, "purpose": string(purpose)}
	if purpose == lifecycle.PurposeAdd {
		// What confirming declares, as the page shows it.
		if mode, pats, ok := s.declared(r.Context(), domain); ok {
			out["mode"], out["mx_patterns"] = mode, pats
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiConfirm(w http.ResponseWriter, r *http.Request) { s.apiTokenUse(w, r, s.confirm) }

func (s *Server) apiWithdraw(w http.ResponseWriter, r *http.Request) { s.apiTokenUse(w, r, s.withdraw) }

// apiTokenUse answers a POST that uses a mailed token, {"token": "..."},
// through use (confirm or withdraw).
func (s *Server) apiTokenUse(w http.ResponseWriter, r *http.Request,
	use func(ctx context.Context, r *http.Request, raw, token string) (changeResponse, *doorError)) {
	var in struct {
		Token string `json:"token"`
	}
	if de := decodeJSON(r, &in); de != nil {
		writeDoorError(w, de)
		return
	}
	resp, de := use(r.Context(), r, r.PathValue("domain"), in.Token)
	if de != nil {
		writeDoorError(w, de)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	v, de := s.statusOf(r.Context(), r.PathValue("domain"))
	if de != nil {
		writeDoorError(w, de)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// batchResponse answers GET /api/v1/domains?name=...: the statuses of the
// known names in the order asked, the unknown ones and the refused ones.
type batchResponse struct {
	Domains  []admission.Status `json:"domains"`
	NotFound []string           `json:"not_found"`
	Invalid  []batchInvalid     `json:"invalid"`
}

type batchInvalid struct {
	Name  string `json:"name"`
	Code  string `json:"code"`
	Error string `json:"error"`
}

func (s *Server) apiBatch(w http.ResponseWriter, r *http.Request) {
	names := r.URL.Query()["name"]
	if len(names) > s.batchMax {
		writeError(w, http.StatusBadRequest, "batch.too_many", "Ask for at most "+strconv.Itoa(s.batchMax)+" names at a time.")
		return
	}
	out := batchResponse{Domains: []admission.Status{}, NotFound: []string{}, Invalid: []batchInvalid{}}
	seen := map[string]bool{}
	for _, n := range names {
		d, de := s.knownDomain(r.Context(), n)
		if de != nil {
			out.Invalid = append(out.Invalid, batchInvalid{Name: cut(n, 260), Code: de.code, Error: de.msg})
			continue
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		dom, err := s.c.Store.GetDomain(r.Context(), d)
		switch {
		case errors.Is(err, store.ErrNotFound):
			out.NotFound = append(out.NotFound, d)
		case err != nil:
			writeError(w, http.StatusInternalServerError, "internal", "store unavailable")
			return
		default:
			out.Domains = append(out.Domains, admission.StatusOf(dom, s.c.Rules))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// listResponse is the current list, or the page of it asked for.
type listResponse struct {
	Serial  int64       `json:"serial"`
	Total   int         `json:"total"`
	Entries []ListEntry `json:"entries"`
	Next    string      `json:"next,omitempty"` // the "after" of the next page
}

// listPageSize is the entries of one page of /list.
const listPageSize = 500

func (s *Server) listData(r *http.Request) (listResponse, *currentList, *doorError) {
	q := r.URL.Query()
	search := q.Get("q")
	if len(search) > 253 {
		return listResponse{}, nil, badRequest("q.too_long", "The search text is too long.")
	}
	cur, err := s.lists.current(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "reading the current list", "err", err)
		return listResponse{}, nil, &doorError{status: http.StatusInternalServerError, code: "internal", msg: "The list cannot be read now."}
	}
	out := listResponse{Entries: []ListEntry{}}
	if cur == nil {
		return out, nil, nil
	}
	entries, more := cur.search(normalizeSearch(search), q.Get("after"), listPageSize)
	out.Serial, out.Total, out.Entries = cur.Serial, len(cur.Entries), entries
	if more {
		out.Next = entries[len(entries)-1].Domain
	}
	return out, cur, nil
}

func (s *Server) apiList(w http.ResponseWriter, r *http.Request) {
	out, _, de := s.listData(r)
	if de != nil {
		writeDoorError(w, de)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// statsResponse is the list size by mode over time, and the store's
// domains by state now.
type statsResponse struct {
	Lists  []StatsPoint   `json:"lists"`
	States map[string]int `json:"states"`
}

func (s *Server) statsData(r *http.Request) (statsResponse, *doorError) {
	ps, err := s.lists.stats(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "stats", "err", err)
		return statsResponse{}, &doorError{status: http.StatusInternalServerError, code: "internal", msg: "The statistics cannot be read now."}
	}
	counts, err := s.c.Store.CountByState(r.Context())
	if err != nil {
		return statsResponse{}, &doorError{status: http.StatusInternalServerError, code: "internal", msg: "The statistics cannot be read now."}
	}
	states := map[string]int{}
	for _, st := range store.States {
		states[string(st)] = counts[st]
	}
	return statsResponse{Lists: ps, States: states}, nil
}

func (s *Server) apiStats(w http.ResponseWriter, r *http.Request) {
	out, de := s.statsData(r)
	if de != nil {
		writeDoorError(w, de)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiSetup(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.setup)
}
