package lifecycle_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/miekg/dns"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/internal/pgtest"
	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
	"github.com/starttls-preload/starttls-preload/store/postgres"
	"github.com/starttls-preload/starttls-preload/store/sqlite"
	"github.com/starttls-preload/starttls-preload/validate"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// backends opens each store the lifecycle runs on: in memory, SQLite and
// PostgreSQL (skipped without the test server unless it is required).
var backends = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"memstore", func(t *testing.T) store.Store { return memstore.New() }},
	{"sqlite", func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), sqlite.FileName))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

type env struct {
	l     *lifecycle.Lifecycle
	st    store.Store
	clock *testclock.Clock
	dns   *lab.DNS
}

func newEnv(t *testing.T, st store.Store) *env {
	t.Helper()
	d := lab.NewDNS(t, "127.0.0.1:0")
	v, err := validate.New(validate.Config{Resolver: d.Addr(), AllowPrivate: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	clock := testclock.New(t0)
	return &env{l: &lifecycle.Lifecycle{Store: st, TXT: v, Now: clock.Now}, st: st, clock: clock, dns: d}
}

func memEnv(t *testing.T) *env { return newEnv(t, memstore.New()) }

func req(name string) lifecycle.Request {
	return lifecycle.Request{Domain: name, Contact: "hostmaster@" + name, MXPatterns: []string{"mx1." + name}, Source: "web"}
}

func (e *env) submit(t *testing.T, name string) lifecycle.Proof {
	t.Helper()
	p, err := e.l.Submit(context.Background(), req(name))
	if err != nil {
		t.Fatalf("Submit(%s): %v", name, err)
	}
	return p
}

func (e *env) state(t *testing.T, name string) store.State {
	t.Helper()
	d, err := e.st.GetDomain(context.Background(), name)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return d.State
}

// publish serves a TXT record at the domain's proof name.
func (e *env) publish(name, value string) {
	e.dns.Add(fmt.Sprintf("%s%s. 300 IN TXT %q", lifecycle.DNSPrefix, name, value))
}

// put makes a domain in state st ("" : none).
func (e *env) put(t *testing.T, name string, st store.State) {
	t.Helper()
	if st == "" {
		return
	}
	if err := e.st.AddDomain(context.Background(), store.Domain{Name: name, State: st, MXPatterns: []string{"mx." + name},
		Contact: "old@" + name, CreatedAt: t0, NextCheck: t0.Add(time.Hour), ChecksPassed: 4}); err != nil {
		t.Fatal(err)
	}
}

var allStates = append([]store.State{""}, store.States...)

func isActive(s store.State) bool { return store.Active(s) }

// TestSubmitByState: Submit from each starting state.
func TestSubmitByState(t *testing.T) {
	for _, from := range allStates {
		t.Run(string(from)+"_", func(t *testing.T) {
			e := memEnv(t)
			e.put(t, "d.test", from)
			p, err := e.l.Submit(context.Background(), req("d.test"))
			if isActive(from) {
				if !errors.Is(err, lifecycle.ErrAlreadyActive) {
					t.Fatalf("Submit: %v, want ErrAlreadyActive", err)
				}
				if got := e.state(t, "d.test"); got != from {
					t.Errorf("state %s, want %s kept", got, from)
				}
				if ps, _ := e.st.Proofs(context.Background(), "d.test"); len(ps) != 0 {
					t.Errorf("a refused submission stored proofs: %+v", ps)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.state(t, "d.test"); got != store.StatePending || p.Previous != from {
				t.Errorf("state %s, previous %q; want pending, previous %q", got, p.Previous, from)
			}
			if p.Purpose != lifecycle.PurposeAdd || p.DNSName != "_starttls-preload.d.test" || p.MailTo != "postmaster@d.test" ||
				!strings.HasPrefix(p.DNSValue, lifecycle.DNSValuePrefix) || len(p.Token) != 26 || !p.Expires.Equal(t0.Add(72*time.Hour)) {
				t.Errorf("proof = %+v", p)
			}
			d, _ := e.st.GetDomain(context.Background(), "d.test")
			if d.Contact != "hostmaster@d.test" || d.MXPatterns[0] != "mx1.d.test" || d.Source != "web" || (from != store.StatePending && d.ChecksPassed != 0) {
				t.Errorf("domain = %+v", d)
			}
			ds, _ := e.st.Decisions(context.Background(), "d.test")
			if from == store.StateRemoved || from == store.StateRemovalRequested {
				if len(ds) != 1 || ds[0].To != store.StatePending || !strings.HasPrefix(ds[0].Reason, admission.CodeReopened+": ") {
					t.Errorf("decisions = %+v, want one %s", ds, admission.CodeReopened)
				}
			} else if len(ds) != 0 {
				t.Errorf("decisions = %+v, want none", ds)
			}
		})
	}
}

// TestAdmitProvenByState: ownership proven elsewhere, from each state.
func TestAdmitProvenByState(t *testing.T) {
	for _, from := range allStates {
		t.Run(string(from)+"_", func(t *testing.T) {
			e := memEnv(t)
			e.put(t, "d.test", from)
			r := req("d.test")
			r.Source = "https://github.com/o/r/pull/3"
			r.Contact = ""
			ch, err := e.l.AdmitProven(context.Background(), r, lifecycle.Evidence{By: lifecycle.ByPullRequest,
				Detail: "TXT _starttls-preload.d.test names https://github.com/o/r/pull/3"})
			if err != nil {
				t.Fatal(err)
			}
			want := store.StateValidating
			if isActive(from) {
				want = from
			}
			if ch.From != from || ch.To != want || e.state(t, "d.test") != want {
				t.Errorf("change %+v, state %s; want %s → %s", ch, e.state(t, "d.test"), from, want)
			}
			d, _ := e.st.GetDomain(context.Background(), "d.test")
			if d.MXPatterns[0] != "mx1.d.test" || d.Source != r.Source {
				t.Errorf("not declared again: %+v", d)
			}
			if from != "" && d.Contact != "old@d.test" {
				t.Errorf("contact %q, want the old one kept (none given)", d.Contact)
			}
			ds, _ := e.st.Decisions(context.Background(), "d.test")
			if isActive(from) {
				if len(ds) != 0 {
					t.Errorf("decisions %+v, want none", ds)
				}
				return
			}
			if len(ds) != 1 || ds[0].To != store.StateValidating || ds[0].Reason != admission.CodeOwnershipPR+": TXT _starttls-preload.d.test names https://github.com/o/r/pull/3" {
				t.Errorf("decisions %+v", ds)
			}
		})
	}
}

// TestRemoveProvenByState: removal proven elsewhere, from each state.
func TestRemoveProvenByState(t *testing.T) {
	for _, from := range allStates {
		t.Run(string(from)+"_", func(t *testing.T) {
			e := memEnv(t)
			e.put(t, "d.test", from)
			ch, err := e.l.RemoveProven(context.Background(), "d.test", lifecycle.Evidence{By: lifecycle.ByOperator, Detail: "by an operator"})
			switch from {
			case "":
				if !errors.Is(err, lifecycle.ErrNotFound) {
					t.Errorf("err = %v, want ErrNotFound", err)
				}
				return
			case store.StateRemoved:
				if !errors.Is(err, lifecycle.ErrAlreadyRemoved) {
					t.Errorf("err = %v, want ErrAlreadyRemoved", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ch.From != from || ch.To != store.StateRemovalRequested || e.state(t, "d.test") != store.StateRemovalRequested {
				t.Errorf("change %+v", ch)
			}
			ds, _ := e.st.Decisions(context.Background(), "d.test")
			if from != store.StateRemovalRequested && (len(ds) != 1 || ds[0].Reason != admission.CodeRequested+": by an operator") {
				t.Errorf("decisions %+v", ds)
			}
		})
	}
}

// TestRemovalProofByState: RequestRemoval then the mailed link, or the TXT
// record, from each state.
func TestRemovalProofByState(t *testing.T) {
	for _, how := range []string{"mail", "dns"} {
		for _, from := range allStates {
			t.Run(how+"/"+string(from)+"_", func(t *testing.T) {
				e := memEnv(t)
				ctx := context.Background()
				e.put(t, "d.test", from)
				p, err := e.l.RequestRemoval(ctx, "d.test", "web")
				switch from {
				case "":
					if !errors.Is(err, lifecycle.ErrNotFound) {
						t.Errorf("err = %v, want ErrNotFound", err)
					}
					return
				case store.StateRemoved:
					if !errors.Is(err, lifecycle.ErrAlreadyRemoved) {
						t.Errorf("err = %v, want ErrAlreadyRemoved", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := e.state(t, "d.test"); got != from {
					t.Fatalf("state %s after asking for a removal proof, want %s kept", got, from)
				}
				var ch lifecycle.Change
				if how == "mail" {
					if pur, err := e.l.PeekToken(ctx, "d.test", p.Token); err != nil || pur != lifecycle.PurposeRemove {
						t.Fatalf("PeekToken = %s, %v", pur, err)
					}
					ch, err = e.l.ConfirmToken(ctx, "d.test", p.Token)
				} else {
					e.publish("d.test", p.DNSValue)
					ch, err = e.l.VerifyDNS(ctx, "d.test")
				}
				if err != nil {
					t.Fatal(err)
				}
				if ch.From != from || ch.To != store.StateRemovalRequested || e.state(t, "d.test") != store.StateRemovalRequested {
					t.Errorf("change %+v", ch)
				}
				code := admission.CodeRemovalMail
				if how == "dns" {
					code = admission.CodeRemovalDNS
				}
				ds, _ := e.st.Decisions(ctx, "d.test")
				if from != store.StateRemovalRequested && (len(ds) != 1 || !strings.HasPrefix(ds[0].Reason, code+": ")) {
					t.Errorf("decisions %+v, want one %s", ds, code)
				}
			})
		}
	}
}

// TestAddProofByState: a pending domain's add proof used (link, TXT,
// withdrawal) after the domain was moved to each state by other means.
func TestAddProofByState(t *testing.T) {
	for _, how := range []string{"mail", "dns", "withdraw"} {
		for _, to := range store.States {
			t.Run(how+"/"+string(to), func(t *testing.T) {
				e := memEnv(t)
				ctx := context.Background()
				p := e.submit(t, "d.test")
				if to != store.StatePending {
					if err := e.st.Transition(ctx, "d.test", store.StatePending, to, "test", t0); err != nil {
						t.Fatal(err)
					}
				}
				var ch lifecycle.Change
				var err error
				switch how {
				case "mail":
					ch, err = e.l.ConfirmToken(ctx, "d.test", p.Token)
				case "dns":
					e.publish("d.test", p.DNSValue)
					ch, err = e.l.VerifyDNS(ctx, "d.test")
				case "withdraw":
					ch, err = e.l.Withdraw(ctx, "d.test", p.Token)
				}
				if to != store.StatePending {
					if !errors.Is(err, lifecycle.ErrStateChanged) {
						t.Errorf("err = %v, want ErrStateChanged", err)
					}
					if got := e.state(t, "d.test"); got != to {
						t.Errorf("state %s, want %s kept", got, to)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				want, code := store.StateValidating, admission.CodeOwnershipMail
				switch how {
				case "dns":
					code = admission.CodeOwnershipDNS
				case "withdraw":
					want, code = store.StateRemoved, admission.CodeWithdrawn
				}
				if ch.From != store.StatePending || ch.To != want || e.state(t, "d.test") != want {
					t.Errorf("change %+v, want pending → %s", ch, want)
				}
				ds, _ := e.st.Decisions(ctx, "d.test")
				if len(ds) != 1 || !strings.HasPrefix(ds[0].Reason, code+": ") {
					t.Errorf("decisions %+v, want one %s", ds, code)
				}
			})
		}
	}
}

func TestTokenExpired(t *testing.T) {
	e := memEnv(t)
	ctx := context.Background()
	p := e.submit(t, "d.test")
	e.clock.Add(72*time.Hour - time.Second)
	if _, err := e.l.PeekToken(ctx, "d.test", p.Token); err != nil {
		t.Fatalf("PeekToken a second before expiry: %v", err)
	}
	e.clock.Add(time.Second)
	if _, err := e.l.PeekToken(ctx, "d.test", p.Token); !errors.Is(err, lifecycle.ErrTokenExpired) {
		t.Errorf("PeekToken at expiry: %v, want ErrTokenExpired", err)
	}
	if _, err := e.l.ConfirmToken(ctx, "d.test", p.Token); !errors.Is(err, lifecycle.ErrTokenExpired) {
		t.Errorf("ConfirmToken at expiry: %v, want ErrTokenExpired", err)
	}
	if got := e.state(t, "d.test"); got != store.StatePending {
		t.Errorf("state %s, want pending", got)
	}
	// A new submission makes a new proof that stands again.
	p = e.submit(t, "d.test")
	if _, err := e.l.ConfirmToken(ctx, "d.test", p.Token); err != nil {
		t.Errorf("ConfirmToken of the new proof: %v", err)
	}
}

func TestTokenReused(t *testing.T) {
	e := memEnv(t)
	ctx := context.Background()
	p := e.submit(t, "d.test")
	if _, err := e.l.ConfirmToken(ctx, "d.test", p.Token); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func() error{
		func() error { _, err := e.l.ConfirmToken(ctx, "d.test", p.Token); return err },
		func() error { _, err := e.l.PeekToken(ctx, "d.test", p.Token); return err },
		func() error { _, err := e.l.Withdraw(ctx, "d.test", p.Token); return err },
	} {
		if err := f(); !errors.Is(err, lifecycle.ErrTokenUsed) {
			t.Errorf("second use: %v, want ErrTokenUsed", err)
		}
	}
	if ds, _ := e.st.Decisions(ctx, "d.test"); len(ds) != 1 {
		t.Errorf("decisions %+v, want one", ds)
	}
}

func TestTokenSuperseded(t *testing.T) {
	e := memEnv(t)
	ctx := context.Background()
	old := e.submit(t, "d.test")
	e.clock.Add(time.Minute)
	cur := e.submit(t, "d.test")
	if old.Token == cur.Token || old.DNSValue == cur.DNSValue {
		t.Fatal("a new submission reused the token or the DNS value")
	}
	_, err := e.l.ConfirmToken(ctx, "d.test", old.Token)
	if !errors.Is(err, lifecycle.ErrTokenSuperseded) || !errors.Is(err, lifecycle.ErrTokenInvalid) {
		t.Errorf("ConfirmToken(old) = %v, want ErrTokenSuperseded (an ErrTokenInvalid)", err)
	}
	if _, err := e.l.PeekToken(ctx, "d.test", old.Token); !errors.Is(err, lifecycle.ErrTokenSuperseded) {
		t.Errorf("PeekToken(old) = %v, want ErrTokenSuperseded", err)
	}
	// The old TXT value proves nothing either.
	e.publish("d.test", old.DNSValue)
	if _, err := e.l.VerifyDNS(ctx, "d.test"); !errors.Is(err, lifecycle.ErrProofMismatch) {
		t.Errorf("VerifyDNS with the old value = %v, want ErrProofMismatch", err)
	}
	if _, err := e.l.ConfirmToken(ctx, "d.test", cur.Token); err != nil {
		t.Errorf("ConfirmToken(new) = %v", err)
	}
	if got := e.state(t, "d.test"); got != store.StateValidating {
		t.Errorf("state %s, want validating", got)
	}
}

func TestTokenWrong(t *testing.T) {
	e := memEnv(t)
	ctx := context.Background()
	p := e.submit(t, "d.test")
	other := e.submit(t, "other.test")
	for _, c := range []struct{ domain, token string }{
		{"d.test", "aaaaaaaaaaaaaaaaaaaaaaaaaa"},
		{"d.test", ""},
		{"d.test", other.Token},
		{"other.test", p.Token},
		{"none.test", p.Token},
		{"D.TEST", p.Token},
		{"d.test", p.Token + "x"},
		{"d.test", strings.Repeat(p.Token, 100)},
	} {
		if _, err := e.l.PeekToken(ctx, c.domain, c.token); !errors.Is(err, lifecycle.ErrTokenInvalid) {
			t.Errorf("PeekToken(%q, %.30q) = %v, want ErrTokenInvalid", c.domain, c.token, err)
		}
		if _, err := e.l.ConfirmToken(ctx, c.domain, c.token); !errors.Is(err, lifecycle.ErrTokenInvalid) {
			t.Errorf("ConfirmToken(%q, %.30q) = %v, want ErrTokenInvalid", c.domain, c.token, err)
		}
	}
	if e.state(t, "d.test") != store.StatePending || e.state(t, "other.test") != store.StatePending {
		t.Error("a wrong token changed a state")
	}
	// A remove token does not withdraw.
	e.put(t, "l.test", store.StateTesting)
	rp, err := e.l.RequestRemoval(ctx, "l.test", "web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Withdraw(ctx, "l.test", rp.Token); !errors.Is(err, lifecycle.ErrTokenInvalid) {
		t.Errorf("Withdraw with a remove token = %v, want ErrTokenInvalid", err)
	}
	// The token is case-insensitive (base32), as some mail clients change case.
	if _, err := e.l.PeekToken(ctx, "d.test", strings.ToUpper(p.Token)); err != nil {
		t.Errorf("PeekToken(upper case) = %v", err)
	}
}

// TestPeekDoesNotConsume: the GET of the link (a mail scanner) proves
// nothing and leaves the token usable.
func TestPeekDoesNotConsume(t *testing.T) {
	e := memEnv(t)
	ctx := context.Background()
	p := e.submit(t, "d.test")
	for range 3 {
		pur, err := e.l.PeekToken(ctx, "d.test", p.Token)
		if err != nil || pur != lifecycle.PurposeAdd {
			t.Fatalf("PeekToken = %s, %v", pur, err)
		}
	}
	if got := e.state(t, "d.test"); got != store.StatePending {
		t.Errorf("state %s after GETs, want pending", got)
	}
	ps, _ := e.st.Proofs(ctx, "d.test")
	if len(ps) != 1 || ps[0].UsedAt != nil {
		t.Errorf("proofs after GETs: %+v, want one unused", ps)
	}
	if _, err := e.l.ConfirmToken(ctx, "d.test", p.Token); err != nil {
		t.Errorf("ConfirmToken after GETs: %v", err)
	}
}

// TestTokenStoredHashed reads every row the store keeps, on each backend:
// the plaintext token is nowhere, its SHA-256 is.
func TestTokenStoredHashed(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b.open(t))
			ctx := context.Background()
			p := e.submit(t, "d.test")
			e.put(t, "l.test", store.StateTesting)
			rp, err := e.l.RequestRemoval(ctx, "l.test", "web")
			if err != nil {
				t.Fatal(err)
			}
			for _, pr := range []lifecycle.Proof{p, rp} {
				sum := sha256.Sum256([]byte(pr.Token))
				stored, err := e.st.ProofByToken(ctx, hex.EncodeToString(sum[:]))
				if err != nil || stored.TokenHash == pr.Token || stored.Domain != pr.Domain {
					t.Errorf("proof by its token's SHA-256: %+v, %v", stored, err)
				}
			}
			db, ok := e.st.(interface{ DB() *sql.DB })
			if !ok {
				ps, _ := e.st.Proofs(ctx, "d.test")
				for _, pr := range ps {
					if strings.Contains(fmt.Sprintf("%+v", pr), p.Token) {
						t.Errorf("the store keeps the plaintext token: %+v", pr)
					}
				}
				return
			}
			for _, table := range []string{"proofs", "domains", "decisions"} {
				rows, err := db.DB().QueryContext(ctx, `SELECT * FROM `+table)
				if err != nil {
					t.Fatal(err)
				}
				cols, _ := rows.Columns()
				n := 0
				for rows.Next() {
					n++
					vals := make([]any, len(cols))
					ptrs := make([]any, len(cols))
					for i := range vals {
						ptrs[i] = &vals[i]
					}
					if err := rows.Scan(ptrs...); err != nil {
						t.Fatal(err)
					}
					for i, v := range vals {
						s := fmt.Sprint(v)
						if b, ok := v.([]byte); ok {
							s = string(b)
						}
						for _, tok := range []string{p.Token, rp.Token} {
							if strings.Contains(strings.ToLower(s), tok) {
								t.Errorf("%s.%s holds a plaintext token", table, cols[i])
							}
						}
					}
				}
				rows.Close()
				if table == "proofs" && n != 2 {
					t.Errorf("%d proof rows, want 2", n)
				}
			}
		})
	}
}

func TestRandomFailure(t *testing.T) {
	e := memEnv(t)
	e.l.Rand = iotest.ErrReader(errors.New("no entropy"))
	if _, err := e.l.Submit(context.Background(), req("d.test")); err == nil {
		t.Fatal("Submit without random bits succeeded")
	}
	if e.state(t, "d.test") != "" {
		t.Error("a failed submission stored the domain")
	}
}

func TestSubmitInvalid(t *testing.T) {
	e := memEnv(t)
	for _, r := range []lifecycle.Request{
		{Domain: "", MXPatterns: []string{"mx.a.test"}},
		{Domain: "A.test", MXPatterns: []string{"mx.a.test"}},
		{Domain: "a.test."},
		{Domain: "a.test", MXPatterns: nil},
		{Domain: "a.test", MXPatterns: []string{"not a pattern"}},
		{Domain: "a.test", MXPatterns: []string{"mx.a.test"}, Contact: "not an address"},
		{Domain: "a.test", MXPatterns: []string{"mx.a.test"}, Contact: "Someone <a@a.test>"},
		{Domain: "a.test", MXPatterns: []string{"mx.a.test"}, Contact: "a@a.test\r\nBcc: x@evil.test"},
	} {
		if _, err := e.l.Submit(context.Background(), r); !errors.Is(err, lifecycle.ErrInvalidRequest) {
			t.Errorf("Submit(%+v) = %v, want ErrInvalidRequest", r, err)
		}
		if _, err := e.l.AdmitProven(context.Background(), r, lifecycle.Evidence{By: lifecycle.ByOperator}); !errors.Is(err, lifecycle.ErrInvalidRequest) {
			t.Errorf("AdmitProven(%+v) = %v, want ErrInvalidRequest", r, err)
		}
	}
	if _, err := e.l.AdmitProven(context.Background(), req("a.test"), lifecycle.Evidence{By: "someone"}); !errors.Is(err, lifecycle.ErrInvalidRequest) {
		t.Errorf("AdmitProven(unknown voucher) = %v, want ErrInvalidRequest", err)
	}
	if ds, _ := e.st.ListDomains(context.Background(), store.Filter{}); len(ds) != 0 {
		t.Errorf("refused requests stored domains: %+v", ds)
	}
}

// TestVerifyDNS: the lab DNS server holds the record, another value, none,
// or fails.
func TestVerifyDNS(t *testing.T) {
	ctx := context.Background()
	e := memEnv(t)
	match := e.submit(t, "match.test")
	e.publish("match.test", "v=spf1 -all")
	e.publish("match.test", match.DNSValue)
	ch, err := e.l.VerifyDNS(ctx, "match.test")
	if err != nil || ch.To != store.StateValidating {
		t.Errorf("VerifyDNS(match) = %+v, %v", ch, err)
	}

	e.submit(t, "other.test")
	e.publish("other.test", lifecycle.DNSValuePrefix+"somethingelse")
	if _, err := e.l.VerifyDNS(ctx, "other.test"); !errors.Is(err, lifecycle.ErrProofMismatch) {
		t.Errorf("VerifyDNS(other value) = %v, want ErrProofMismatch", err)
	}

	e.submit(t, "absent.test")
	if _, err := e.l.VerifyDNS(ctx, "absent.test"); !errors.Is(err, lifecycle.ErrProofMismatch) {
		t.Errorf("VerifyDNS(no record) = %v, want ErrProofMismatch", err)
	}

	e.submit(t, "fail.test")
	e.dns.SetRcode("_starttls-preload.fail.test", dns.TypeTXT, dns.RcodeServerFailure)
	if _, err := e.l.VerifyDNS(ctx, "fail.test"); err == nil || errors.Is(err, lifecycle.ErrProofMismatch) {
		t.Errorf("VerifyDNS(SERVFAIL) = %v, want a look-up error, not a mismatch", err)
	}

	if _, err := e.l.VerifyDNS(ctx, "none.test"); !errors.Is(err, lifecycle.ErrNoPendingProof) {
		t.Errorf("VerifyDNS(no proof) = %v, want ErrNoPendingProof", err)
	}
	if _, err := e.l.VerifyDNS(ctx, "match.test"); !errors.Is(err, lifecycle.ErrNoPendingProof) {
		t.Errorf("VerifyDNS(used) = %v, want ErrNoPendingProof", err)
	}

	// Expired: the record came too late.
	late := e.submit(t, "late.test")
	e.clock.Add(72 * time.Hour)
	e.publish("late.test", late.DNSValue)
	if _, err := e.l.VerifyDNS(ctx, "late.test"); !errors.Is(err, lifecycle.ErrNoPendingProof) {
		t.Errorf("VerifyDNS(expired) = %v, want ErrNoPendingProof", err)
	}
	if e.state(t, "late.test") != store.StatePending {
		t.Error("an expired DNS proof moved the domain")
	}
}

// TestRemovalWithoutMailServers: a listed domain whose mail servers are
// gone leaves the list by the DNS proof alone.
func TestRemovalWithoutMailServers(t *testing.T) {
	ctx := context.Background()
	e := memEnv(t)
	e.put(t, "gone.test", store.StateEnforce) // no MX, no A: only its TXT
	p, err := e.l.RequestRemoval(ctx, "gone.test", "web")
	if err != nil {
		t.Fatal(err)
	}
	if pending, err := e.l.PendingProofs(ctx, "gone.test"); err != nil || len(pending) != 1 || pending[0].Token != "" || pending[0].DNSValue != p.DNSValue {
		t.Errorf("PendingProofs = %+v, %v", pending, err)
	}
	e.publish("gone.test", p.DNSValue)
	rep, err := e.l.RetryPendingDNS(ctx)
	if err != nil || rep.Proven != 1 {
		t.Fatalf("RetryPendingDNS = %+v, %v", rep, err)
	}
	if got := e.state(t, "gone.test"); got != store.StateRemovalRequested {
		t.Errorf("state %s, want removal_requested", got)
	}
}

func TestRetryPendingDNS(t *testing.T) {
	ctx := context.Background()
	e := memEnv(t)
	ok := e.submit(t, "ok.test")
	e.submit(t, "wait.test")
	e.submit(t, "fail.test")
	e.dns.SetRcode("_starttls-preload.fail.test", dns.TypeTXT, dns.RcodeServerFailure)
	e.publish("ok.test", ok.DNSValue)
	rep, err := e.l.RetryPendingDNS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep != (lifecycle.RetryReport{Checked: 3, Proven: 1, Failed: 1}) {
		t.Errorf("report %+v, want 3 checked, 1 proven, 1 failed", rep)
	}
	if e.state(t, "ok.test") != store.StateValidating || e.state(t, "wait.test") != store.StatePending {
		t.Error("states after the retry")
	}
	// Retried while they stand; after 72 h nothing is left to look up.
	rep, _ = e.l.RetryPendingDNS(ctx)
	if rep.Checked != 2 {
		t.Errorf("second retry checked %d, want 2", rep.Checked)
	}
	e.clock.Add(72 * time.Hour)
	queries := e.dns.Queries()
	rep, err = e.l.RetryPendingDNS(ctx)
	if err != nil || rep.Checked != 0 || rep.Pruned != 0 || e.dns.Queries() != queries {
		t.Errorf("after expiry: %+v, %v, %d queries; want nothing looked up or pruned", rep, err, e.dns.Queries()-queries)
	}
	// Expired proofs are kept for ProofRetention, then deleted.
	e.clock.Add(lifecycle.DefaultProofRetention + time.Second)
	rep, err = e.l.RetryPendingDNS(ctx)
	if err != nil || rep.Pruned != 3 {
		t.Errorf("after the retention: %+v, %v; want 3 proofs pruned", rep, err)
	}
	if ps, _ := e.st.Proofs(ctx, "wait.test"); len(ps) != 0 {
		t.Errorf("proofs left: %+v", ps)
	}
}

// TestConcurrentSubmit: two submissions of one domain at once end in one
// domain with one standing proof, on every backend.
func TestConcurrentSubmit(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b.open(t))
			ctx := context.Background()
			var wg sync.WaitGroup
			proofs := make([]lifecycle.Proof, 2)
			errs := make([]error, 2)
			for i := range 2 {
				wg.Go(func() { proofs[i], errs[i] = e.l.Submit(ctx, req("d.test")) })
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			ds, err := e.st.ListDomains(ctx, store.Filter{})
			if err != nil || len(ds) != 1 {
				t.Fatalf("domains %+v, %v; want one", ds, err)
			}
			good := 0
			for _, p := range proofs {
				if _, err := e.l.PeekToken(ctx, "d.test", p.Token); err == nil {
					good++
				} else if !errors.Is(err, lifecycle.ErrTokenSuperseded) {
					t.Errorf("PeekToken: %v", err)
				}
			}
			if good != 1 {
				t.Errorf("%d tokens stand, want 1", good)
			}
		})
	}
}

// TestTwoDoors: submitted on the web, then proven by a pull request: one
// domain, validating, the web token superseded, the PR recorded.
func TestTwoDoors(t *testing.T) {
	ctx := context.Background()
	e := memEnv(t)
	web := e.submit(t, "d.test")
	pr := "https://github.com/o/r/pull/12"
	r := req("d.test")
	r.Source = pr
	ch, err := e.l.AdmitProven(ctx, r, lifecycle.Evidence{By: lifecycle.ByPullRequest, Detail: "TXT _starttls-preload.d.test names " + pr})
	if err != nil || ch.From != store.StatePending || ch.To != store.StateValidating {
		t.Fatalf("AdmitProven = %+v, %v", ch, err)
	}
	ds, _ := e.st.ListDomains(ctx, store.Filter{})
	if len(ds) != 1 || ds[0].Source != pr || ds[0].State != store.StateValidating {
		t.Errorf("domains %+v, want one, validating, from the PR", ds)
	}
	if _, err := e.l.ConfirmToken(ctx, "d.test", web.Token); !errors.Is(err, lifecycle.ErrTokenSuperseded) {
		t.Errorf("web token after the PR's proof: %v, want ErrTokenSuperseded", err)
	}
	// And the web form, now, finds the domain active.
	if _, err := e.l.Submit(ctx, req("d.test")); !errors.Is(err, lifecycle.ErrAlreadyActive) {
		t.Errorf("Submit after the PR: %v, want ErrAlreadyActive", err)
	}
	dec, _ := e.st.Decisions(ctx, "d.test")
	if len(dec) != 1 || !strings.HasPrefix(dec[0].Reason, admission.CodeOwnershipPR+": ") {
		t.Errorf("decisions %+v", dec)
	}
}

// TestWithdrawThenSubmit: a withdrawn domain can be submitted again.
func TestWithdrawThenSubmit(t *testing.T) {
	ctx := context.Background()
	e := memEnv(t)
	p := e.submit(t, "d.test")
	if _, err := e.l.Withdraw(ctx, "d.test", p.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.PendingProofs(ctx, "d.test"); err != nil {
		t.Fatal(err)
	}
	p = e.submit(t, "d.test")
	if _, err := e.l.ConfirmToken(ctx, "d.test", p.Token); err != nil {
		t.Fatal(err)
	}
	if got := e.state(t, "d.test"); got != store.StateValidating {
		t.Errorf("state %s, want validating", got)
	}
}

var _ lifecycle.TXTLookup = (*validate.Validator)(nil)

// TestRemovalTokenSuperseded: a newer removal request replaces the older
// one's link and record; the add proof of the same domain is another
// purpose and stands.
func TestRemovalTokenSuperseded(t *testing.T) {
	ctx := context.Background()
	e := memEnv(t)
	add := e.submit(t, "d.test")
	old, err := e.l.RequestRemoval(ctx, "d.test", "web")
	if err != nil {
		t.Fatal(err)
	}
	cur, err := e.l.RequestRemoval(ctx, "d.test", "web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.ConfirmToken(ctx, "d.test", old.Token); !errors.Is(err, lifecycle.ErrTokenSuperseded) {
		t.Errorf("old removal token: %v, want ErrTokenSuperseded", err)
	}
	if pur, err := e.l.PeekToken(ctx, "d.test", add.Token); err != nil || pur != lifecycle.PurposeAdd {
		t.Errorf("add token after removal requests: %s, %v", pur, err)
	}
	if ps, err := e.l.PendingProofs(ctx, "d.test"); err != nil || len(ps) != 2 {
		t.Errorf("PendingProofs = %+v, %v; want the add and the newer remove proof", ps, err)
	}
	ch, err := e.l.ConfirmToken(ctx, "d.test", cur.Token)
	if err != nil || ch.From != store.StatePending || ch.To != store.StateRemovalRequested {
		t.Fatalf("ConfirmToken(removal) = %+v, %v", ch, err)
	}
	// The submission the owner asked to drop can no longer be proven.
	if _, err := e.l.ConfirmToken(ctx, "d.test", add.Token); !errors.Is(err, lifecycle.ErrTokenSuperseded) {
		t.Errorf("add token after the removal: %v, want ErrTokenSuperseded", err)
	}
}
