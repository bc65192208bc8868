package admission

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// Status is a domain's public status, as `domains list --json` and
// GET /api/v1/domains show it.
type Status struct {
	Domain       string     `json:"domain"`
	State        State      `json:"state"`
	ListedAs     string     `json:"listed_as,omitempty"` // the list's mode when listed
	MXPatterns   []string   `json:"mx_patterns"`
	WantEnforce  bool       `json:"want_enforce"`
	FollowMTASTS bool       `json:"follow_mta_sts"`
	ChecksPassed int        `json:"checks_passed"`
	ChecksNeeded int        `json:"checks_needed"` // passes needed for admission (validating), else 0
	PassingSince *time.Time `json:"passing_since"`
	FailingSince *time.Time `json:"failing_since"`
	LastChecked  *time.Time `json:"last_checked"`
	NextCheck    time.Time  `json:"next_check"`
}

// StatusOf returns a stored domain's status under rules r.
func StatusOf(d store.Domain, r Rules) Status {
	s := Status{
		Domain:       d.Name,
		State:        d.State,
		MXPatterns:   d.MXPatterns,
		WantEnforce:  d.WantEnforce,
		FollowMTASTS: d.FollowMTASTS,
		ChecksPassed: d.ChecksPassed,
		PassingSince: d.PassingSince,
		FailingSince: d.FailingSince,
		LastChecked:  d.LastChecked,
		NextCheck:    d.NextCheck,
	}
	if s.MXPatterns == nil {
		s.MXPatterns = []string{}
	}
	if Listed(d.State) {
		s.ListedAs = ListMode(d.State)
	}
	if d.State == Validating || d.State == Pending {
		s.ChecksNeeded = r.MinChecks
	}
	return s
}

// CheckEntry is one check in a domain's history.
type CheckEntry struct {
	At       time.Time       `json:"at"`
	Eligible bool            `json:"eligible"`
	MXHosts  []string        `json:"mx_hosts"`
	Findings json.RawMessage `json:"findings"`
}

// DecisionEntry is one recorded decision.
type DecisionEntry struct {
	At     time.Time `json:"at"`
	From   State     `json:"from"`
	To     State     `json:"to"`
	Reason string    `json:"reason"`
}

// Detail is a domain's status with its recent history and every decision.
type Detail struct {
	Status
	Checks    []CheckEntry    `json:"checks"`    // newest first
	Decisions []DecisionEntry `json:"decisions"` // oldest first
}

// DetailOf reads a domain's status, its latest checks (at most limit) and
// its decisions, at one moment (store.DomainDetail). It returns
// store.ErrNotFound for an unknown domain.
func DetailOf(ctx context.Context, st store.Store, r Rules, name string, limit int) (Detail, error) {
	sd, err := st.DomainDetail(ctx, name, limit)
	if err != nil {
		return Detail{}, err
	}
	return DetailFrom(sd, r), nil
}

// DetailFrom is the status of a domain read with store.DomainDetail.
func DetailFrom(sd store.Detail, r Rules) Detail {
	out := Detail{Status: StatusOf(sd.Domain, r), Checks: make([]CheckEntry, 0, len(sd.Checks)), Decisions: make([]DecisionEntry, 0, len(sd.Decisions))}
	for _, c := range sd.Checks {
		f := c.Findings
		if len(f) == 0 {
			f = json.RawMessage("[]")
		}
		hosts := c.MXHosts
		if hosts == nil {
			hosts = []string{}
		}
		out.Checks = append(out.Checks, CheckEntry{At: c.At, Eligible: c.Eligible, MXHosts: hosts, Findings: f})
	}
	for _, d := range sd.Decisions {
		out.Decisions = append(out.Decisions, DecisionEntry{At: d.At, From: d.From, To: d.To, Reason: d.Reason})
	}
	return out
}

// maxPage bounds one page of the status API.
const maxPage = 1000

// NewStatusHandler serves the domains' status as JSON:
//
//	GET /api/v1/domains[?after=NAME&limit=N]  statuses sorted by name ([] when none)
//	GET /api/v1/domains/{domain}              one domain with its history and decisions
//
// Contacts and ownership tokens are never shown.
func NewStatusHandler(st store.Store, r Rules) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/domains", func(w http.ResponseWriter, req *http.Request) {
		limit := maxPage
		if s := req.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				writeJSONError(w, http.StatusBadRequest, "limit must be a positive integer")
				return
			}
			limit = min(n, maxPage)
		}
		doms, err := st.ListDomains(req.Context(), store.Filter{After: req.URL.Query().Get("after"), Limit: limit})
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, "store unavailable")
			return
		}
		out := make([]Status, 0, len(doms))
		for _, d := range doms {
			out = append(out, StatusOf(d, r))
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /api/v1/domains/{domain}", func(w http.ResponseWriter, req *http.Request) {
		d, err := DetailOf(req.Context(), st, r, normalizeHost(req.PathValue("domain")), 100)
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeJSONError(w, http.StatusNotFound, "no such domain")
		case err != nil:
			writeJSONError(w, http.StatusInternalServerError, "store unavailable")
		default:
			writeJSON(w, http.StatusOK, d)
		}
	})
	// Anything else under the API (an unknown path, a domain that is no
	// path segment such as "%2F", another method) is answered in JSON too,
	// not with the mux's plain-text error.
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		writeJSONError(w, http.StatusNotFound, "no such API path")
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
