package submit

import (
	"errors"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/validate"
)

// setupInfo is the MTA operators' set-up for this instance (the home page
// and GET /api/v1/setup).
type setupInfo struct {
	ListURL           string   `json:"list_url"`
	PubKeyURL         string   `json:"pubkey_url"`
	AllowedSignersURL string   `json:"allowed_signers_url"`
	Fingerprints      []string `json:"fingerprints"`
	FetchYAML         string   `json:"fetch_yaml"`
	FetchCommand      string   `json:"fetch_command"`
	CronLine          string   `json:"cron"`
	Systemd           string   `json:"systemd"`
}

// newSetup writes the set-up lines for this instance, from the files in
// contrib/ and the fetch command's flags.
func newSetup(base string, fps []string) setupInfo {
	list := base + "/policy-list.json"
	if fps == nil {
		fps = []string{}
	}
	return setupInfo{
		ListURL:           list,
		PubKeyURL:         base + "/pubkey.pem",
		AllowedSignersURL: base + "/allowed_signers",
		Fingerprints:      fps,
		FetchYAML: `fetch:
  url: ` + list + `
  pubkey: /etc/starttls-preload/pubkey.pem
  state_dir: /var/lib/starttls-preload
  postfix_map: /etc/postfix/starttls-policy
  postmap: hash
  reload: postfix reload
  early_adopter: false`,
		FetchCommand: "starttls-preload fetch --config /etc/starttls-preload/fetch.yaml\n" +
			"# or, without the file:\n" +
			"starttls-preload fetch --url " + list + " \\\n" +
			"    --pubkey /etc/starttls-preload/pubkey.pem --state-dir /var/lib/starttls-preload \\\n" +
			"    --postfix-map /etc/postfix/starttls-policy --postmap hash --reload 'postfix reload'",
		CronLine: "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nMAILTO=root\n" +
			"17 * * * *  root  starttls-preload fetch --config /etc/starttls-preload/fetch.yaml --log-level warn --jitter 30m",
		Systemd: `# /etc/systemd/system/starttls-preload-fetch.service
[Unit]
Description=Fetch and install the STARTTLS preload list
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/local/bin/starttls-preload fetch --config /etc/starttls-preload/fetch.yaml --log-level warn
StateDirectory=starttls-preload
StateDirectoryMode=0700
ProtectSystem=true
ProtectHome=true
PrivateTmp=true
NoNewPrivileges=true
TimeoutStartSec=10min

# /etc/systemd/system/starttls-preload-fetch.timer
[Unit]
Description=Fetch the STARTTLS preload list every hour

[Timer]
OnCalendar=hourly
RandomizedDelaySec=30min
Persistent=true

[Install]
WantedBy=timers.target

# then:
systemctl daemon-reload && systemctl enable --now starttls-preload-fetch.timer`,
	}
}

type homeData struct {
	Page
	setupInfo
	MinDays, MinChecks int
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=60")
	s.render(w, r, http.StatusOK, "home", homeData{Page: Page{Title: "STARTTLS preload list"}, setupInfo: s.setup, MinDays: s.c.Rules.MinDays, MinChecks: s.c.Rules.MinChecks})
}

// mxView is one MX host of a check result with its findings, and those
// of each of its addresses.
type mxView struct {
	Host       string
	Preference uint16
	Findings   []validate.Finding
	Addresses  []addrView
}

type addrView struct {
	validate.AddressResult
	Findings []validate.Finding
}

type checkData struct {
	Page
	Input          string
	NameError      string
	NameCode       string
	Result         *validate.Result
	Cached         bool
	DomainFindings []validate.Finding
	MXs            []mxView
	Known          bool
	KnownState     string
	StatusURL      string
	CanSubmit      bool
	MXPatterns     string
	MinDays        int
	ChecksPerDay   int
}

// groupFindings puts each finding under its MX host and address; those
// that name neither (or a host that is not an MX) are the domain's.
func groupFindings(res *validate.Result) (domain []validate.Finding, mxs []mxView) {
	index := map[string]int{}
	for _, mx := range res.MXs {
		v := mxView{Host: mx.Host, Preference: mx.Preference}
		for _, a := range mx.Addresses {
			v.Addresses = append(v.Addresses, addrView{AddressResult: a})
		}
		index[strings.ToLower(mx.Host)] = len(mxs)
		mxs = append(mxs, v)
	}
	for _, f := range res.Findings {
		i, ok := index[strings.ToLower(f.Host)]
		if f.Host == "" || !ok {
			domain = append(domain, f)
			continue
		}
		placed := false
		if f.IP != "" {
			for j := range mxs[i].Addresses {
				if mxs[i].Addresses[j].IP == f.IP {
					mxs[i].Addresses[j].Findings = append(mxs[i].Addresses[j].Findings, f)
					placed = true
					break
				}
			}
		}
		if !placed {
			mxs[i].Findings = append(mxs[i].Findings, f)
		}
	}
	return domain, mxs
}

// submittable are the states Submit accepts (lifecycle: a domain already
// checked or listed is not put back to pending by a form).
func submittable(st store.State) bool {
	return st == store.StatePending || st == store.StateRemovalRequested || st == store.StateRemoved
}

func (s *Server) checkPage(w http.ResponseWriter, r *http.Request) {
	input := r.URL.Query().Get("domain")
	data := checkData{Page: Page{Title: "Check a domain"}, Input: cut(input, 300), MinDays: s.c.Rules.MinDays,
		ChecksPerDay: max(1, int(24*60*60/max(1, s.c.CheckInterval.Seconds())))}
	domain, de := s.parseDomain(input)
	if de != nil {
		data.NameError, data.NameCode = de.msg, de.code
		s.render(w, r, de.status, "check", data)
		return
	}
	res, cached, de := s.check(r.Context(), r, domain)
	if de != nil {
		if de.status == http.StatusTooManyRequests || de.retry > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(retryAfter(de.retry)))
		}
		s.errorPage(w, r, de.status, de.msg)
		return
	}
	data.Title = "Check of " + domain
	data.Result, data.Cached = res, cached
	data.DomainFindings, data.MXs = groupFindings(res)
	data.StatusURL = "/domains/" + domain
	d, err := s.c.Store.GetDomain(r.Context(), domain)
	known := err == nil
	if known {
		data.Known, data.KnownState = true, stateWords[d.State]
	}
	data.CanSubmit = res.Eligible && s.c.Lifecycle != nil && (!known || submittable(d.State))
	if data.CanSubmit {
		data.CSRF = s.csrfToken(w, r)
		var hosts []string
		for _, mx := range res.MXs {
			hosts = append(hosts, strings.ToLower(strings.TrimSuffix(mx.Host, ".")))
		}
		data.MXPatterns = strings.Join(hosts, "\n")
	}
	s.render(w, r, http.StatusOK, "check", data)
}

// formOK checks a page's POST: a url-encoded form within the body bound,
// with the CSRF token of the visitor's cookie. It answers the refusal.
func (s *Server) formOK(w http.ResponseWriter, r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		s.errorPage(w, r, http.StatusUnsupportedMediaType, "Send the form from its page.")
		return false
	}
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.errorPage(w, r, http.StatusRequestEntityTooLarge, "The form is too large.")
		} else {
			s.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		}
		return false
	}
	if !s.csrfOK(r) {
		s.errorPage(w, r, http.StatusForbidden, "This form has expired or was not sent from its page here. Reload the page and send it again.")
		return false
	}
	return true
}

func (s *Server) doorErrorPage(w http.ResponseWriter, r *http.Request, de *doorError) {
	if de.status == http.StatusTooManyRequests || de.retry > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(retryAfter(de.retry)))
	}
	s.errorPage(w, r, de.status, de.msg)
}

type proofData struct {
	Page
	Domain     string
	Purpose    lifecycle.Purpose
	DNSName    string
	DNSValue   string
	MailTo     string
	MailSent   bool
	Expires    any
	VerifyPath string
	StatusPath string
}

func (s *Server) proofPage(w http.ResponseWriter, r *http.Request, resp proofResponse, title string) {
	p := resp.Proof
	sent := p.Mail.Sent != nil && *p.Mail.Sent
	s.render(w, r, http.StatusAccepted, "proof", proofData{
		Page: Page{Title: title, CSRF: s.csrfToken(w, r)}, Domain: resp.Domain, Purpose: p.Purpose,
		DNSName: p.DNS.Name, DNSValue: p.DNS.Value, MailTo: p.Mail.To, MailSent: sent, Expires: p.Expires,
		VerifyPath: "/domains/" + resp.Domain + "/verify", StatusPath: "/domains/" + resp.Domain,
	})
}

// splitPatterns reads the form's MX patterns: one a line (commas and
// spaces separate too).
func splitPatterns(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' || r == ' ' || r == '\t' })
}

func (s *Server) submitPage(w http.ResponseWriter, r *http.Request) {
	if !s.formOK(w, r) {
		return
	}
	in := submission{Domain: r.PostForm.Get("domain"), Contact: r.PostForm.Get("contact"), Mode: r.PostForm.Get("mode"), MXPatterns: splitPatterns(r.PostForm.Get("mx_patterns"))}
	resp, de := s.submit(r.Context(), r, in)
	if de != nil {
		s.doorErrorPage(w, r, de)
		return
	}
	s.proofPage(w, r, resp, "Prove that you control "+resp.Domain)
}

func (s *Server) removalPage(w http.ResponseWriter, r *http.Request) {
	if !s.formOK(w, r) {
		return
	}
	resp, de := s.removal(r.Context(), r, r.PathValue("domain"))
	if de != nil {
		s.doorErrorPage(w, r, de)
		return
	}
	s.proofPage(w, r, resp, "Prove that you control "+resp.Domain+" to remove it")
}

type doneData struct {
	Page
	Domain     string
	State      string
	Message    string
	StatusPath string
}

func (s *Server) donePage(w http.ResponseWriter, r *http.Request, c changeResponse) {
	msg := "Proven. " + c.Domain + " is now " + stateWords[store.State(c.State)] + "."
	switch store.State(c.State) {
	case store.StateValidating:
		msg = "Control of " + c.Domain + " is proven. It is now checked again and again; it is listed once it has passed for the admission period."
	case store.StateRemovalRequested:
		msg = "The removal of " + c.Domain + " is confirmed: it leaves the next list. " + s.dropNote()
	}
	s.render(w, r, http.StatusOK, "done", doneData{Page: Page{Title: "Proven"}, Domain: c.Domain, State: c.State, Message: msg, StatusPath: "/domains/" + c.Domain})
}

// dropNote says when MTAs stop using a removed domain.
func (s *Server) dropNote() string {
	return fmt.Sprintf("Mail servers drop it at their next fetch of the list (hourly with the recommended set-up), and at the latest when the last list that carries it expires, %s after it was signed.", days(s.c.ListValidity))
}

func (s *Server) verifyPage(w http.ResponseWriter, r *http.Request) {
	if !s.formOK(w, r) {
		return
	}
	c, de := s.verify(r.Context(), r, r.PathValue("domain"))
	if de != nil {
		s.doorErrorPage(w, r, de)
		return
	}
	s.donePage(w, r, c)
}

type confirmData struct {
	Page
	Domain       string
	Purpose      lifecycle.Purpose
	Mode         string   // add: the mode the button declares
	MXPatterns   []string // add: the MX patterns the button declares
	Token        string
	ConfirmPath  string
	WithdrawPath string
}

// confirmGetPage is the mailed link: it shows a button and consumes
// nothing, so a mail scanner that follows links proves nothing.
func (s *Server) confirmGetPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	domain, purpose, de := s.peek(r.Context(), r, r.PathValue("domain"), token)
	if de != nil {
		s.doorErrorPage(w, r, de)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	data := confirmData{
		Page: Page{Title: "Confirm", CSRF: s.csrfToken(w, r)}, Domain: domain, Purpose: purpose, Token: token,
		ConfirmPath: "/domains/" + domain + "/confirm", WithdrawPath: "/domains/" + domain + "/withdraw",
	}
	if purpose == lifecycle.PurposeAdd {
		data.Mode, data.MXPatterns, _ = s.declared(r.Context(), domain)
	}
	s.render(w, r, http.StatusOK, "confirm", data)
}

func (s *Server) confirmPostPage(w http.ResponseWriter, r *http.Request) {
	if !s.formOK(w, r) {
		return
	}
	c, de := s.confirm(r.Context(), r, r.PathValue("domain"), r.PostForm.Get("token"))
	if de != nil {
		s.doorErrorPage(w, r, de)
		return
	}
	s.donePage(w, r, c)
}

func (s *Server) withdrawPage(w http.ResponseWriter, r *http.Request) {
	if !s.formOK(w, r) {
		return
	}
	c, de := s.withdraw(r.Context(), r, r.PathValue("domain"), r.PostForm.Get("token"))
	if de != nil {
		s.doorErrorPage(w, r, de)
		return
	}
	s.render(w, r, http.StatusOK, "done", doneData{Page: Page{Title: "Withdrawn"}, Domain: c.Domain, State: c.State,
		Message: "The request to add " + c.Domain + " is withdrawn. Nothing more happens unless someone submits it again.", StatusPath: "/domains/" + c.Domain})
}

// statusData is the status page's view, flat: the template reaches every
// field directly, not through embedded structs (each level costs a
// reflective look-up per use).
type statusData struct {
	Title        string
	CSRF         string
	Domain       string
	State        store.State
	StateText    string
	Progress     progress
	Listed       *listedIn
	WantEnforce  bool
	MXPatterns   []string
	Proofs       []proofJSON
	HasChart     bool
	ChartSVG     template.HTML
	ChartChecks  int
	LastAt       any
	LastFindings []validate.Finding
	Decisions    []admission.DecisionEntry
	// The rows of LastFindings and Decisions (fragments.go).
	LastFindingsHTML, DecisionsHTML template.HTML
	VerifyPath                      string
	RemovalPath                     string
	CanRemove                       bool
	RemovalNote                     string
	DropNote                        string
}

func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	v, de := s.statusOf(r.Context(), r.PathValue("domain"))
	if de != nil {
		s.doorErrorPage(w, r, de)
		return
	}
	chart := newHistoryChart(v.Checks)
	d := statusData{
		Title: v.Domain, Domain: v.Domain, State: v.State, StateText: v.StateText, Progress: v.Progress, Listed: v.Listed,
		WantEnforce: v.WantEnforce, MXPatterns: v.MXPatterns, Proofs: v.PendingProofs,
		HasChart: len(chart.Marks) > 0, ChartSVG: chart.SVG, ChartChecks: len(v.Checks), Decisions: v.Decisions,
		VerifyPath: "/domains/" + v.Domain + "/verify", RemovalPath: "/domains/" + v.Domain + "/removal", DropNote: s.dropNote(),
	}
	if len(v.Checks) > 0 {
		d.LastAt = v.Checks[0].At
		d.LastFindings = decodeFindings(v.Checks[0].Findings)
		d.LastFindingsHTML = findingItems(d.LastFindings)
	}
	d.DecisionsHTML = decisionRows(d.Decisions)
	switch v.State {
	case store.StateRemovalRequested:
		d.RemovalNote = "It leaves the next list. " + s.dropNote()
		if v.Listed == nil && v.CurrentSerial > 0 {
			d.RemovalNote = fmt.Sprintf("It is not in the current list (serial %d). ", v.CurrentSerial) + s.dropNote()
		}
	case store.StateRemoved:
		d.RemovalNote = "It is on no list published since its removal; mail servers dropped it at their next fetch of the list."
	}
	d.CanRemove = s.c.Lifecycle != nil && v.State != store.StateRemoved && v.State != store.StateRemovalRequested
	if d.CanRemove || len(d.Proofs) > 0 {
		d.CSRF = s.csrfToken(w, r)
	}
	s.render(w, r, http.StatusOK, "status", d)
}

type listData struct {
	Page
	listResponse
	Q         string
	Timestamp any
	Expires   any
	Next      string
}

func (s *Server) listPage(w http.ResponseWriter, r *http.Request) {
	out, cur, de := s.listData(r)
	if de != nil {
		s.doorErrorPage(w, r, de)
		return
	}
	q := r.URL.Query().Get("q")
	d := listData{Page: Page{Title: "The list"}, listResponse: out, Q: q}
	if cur != nil {
		d.Timestamp, d.Expires = cur.Timestamp, cur.Expires
		if out.Next != "" {
			d.Next = "/list?" + url.Values{"q": {q}, "after": {out.Next}}.Encode()
		}
	}
	s.render(w, r, http.StatusOK, "list", d)
}

type stateCount struct {
	State string
	Count int
}

type statsData struct {
	Page
	States []stateCount
	Chart  statsChart
}

func (s *Server) statsPage(w http.ResponseWriter, r *http.Request) {
	out, de := s.statsData(r)
	if de != nil {
		s.doorErrorPage(w, r, de)
		return
	}
	d := statsData{Page: Page{Title: "Statistics"}, Chart: newStatsChart(out.Lists)}
	for _, st := range store.States {
		d.States = append(d.States, stateCount{string(st), out.States[string(st)]})
	}
	s.render(w, r, http.StatusOK, "stats", d)
}

// normalizeSearch is the list search's form of what a visitor typed.
func normalizeSearch(q string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(q)), ".")
}

func days(d interface{ Hours() float64 }) string {
	n := d.Hours() / 24
	if n == float64(int(n)) {
		if n == 1 {
			return "1 day"
		}
		return fmt.Sprintf("%d days", int(n))
	}
	return fmt.Sprintf("%.0f hours", d.Hours())
}
