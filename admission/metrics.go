package admission

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the scheduler's Prometheus metrics.
type Metrics struct {
	checks   *prometheus.CounterVec
	duration prometheus.Histogram
	queue    prometheus.Gauge
	domains  *prometheus.GaugeVec
	rounds   prometheus.Counter
	lists    prometheus.Counter
	notices  *prometheus.CounterVec
}

// Check outcomes, the values of the "outcome" label.
const (
	OutcomePass     = "pass"      // eligible, MX hosts within the patterns
	OutcomeFail     = "fail"      // a finding of severity error, or an MX outside the patterns
	OutcomeError    = "error"     // the checker itself could not work
	OutcomeOptedOut = "opted_out" // never probed
)

// Notice results, the values of the notices_total "result" label.
const (
	NoticeSent    = "sent"    // accepted by the relay
	NoticeFailed  = "failed"  // the relay refused it or could not be reached in time
	NoticeDropped = "dropped" // the queue was full
	NoticeSkipped = "skipped" // the domain has no contact
)

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "starttls_preload", Name: "checks_total",
			Help: "Domain checks by outcome (pass, fail, error, opted_out).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "starttls_preload", Name: "check_duration_seconds",
			Help:    "Time to check one domain (results shared within a round make most checks fast).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "starttls_preload", Name: "queue_depth",
			Help: "Domains claimed in the current round and not yet checked.",
		}),
		domains: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "starttls_preload", Name: "domains",
			Help: "Domains by state.",
		}, []string{"state"}),
		rounds: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "starttls_preload", Name: "rounds_total",
			Help: "Rounds of checks completed.",
		}),
		lists: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "starttls_preload", Name: "lists_published_total",
			Help: "Signed lists generated and published.",
		}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "starttls_preload", Name: "notices_total",
			Help: "Notices to contacts by result (sent, failed, dropped, skipped).",
		}, []string{"result"}),
	}
	for _, r := range []string{NoticeSent, NoticeFailed, NoticeDropped, NoticeSkipped} {
		m.notices.WithLabelValues(r)
	}
	for _, o := range []string{OutcomePass, OutcomeFail, OutcomeError, OutcomeOptedOut} {
		m.checks.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.checks, m.duration, m.queue, m.domains, m.rounds, m.lists, m.notices)
	}
	return m
}

func (m *Metrics) check(outcome string, seconds float64) {
	if m == nil {
		return
	}
	m.checks.WithLabelValues(outcome).Inc()
	if outcome != OutcomeOptedOut {
		m.duration.Observe(seconds)
	}
}

func (m *Metrics) queueAdd(n int) {
	if m != nil {
		m.queue.Add(float64(n))
	}
}

func (m *Metrics) setStates(counts map[State]int) {
	if m == nil {
		return
	}
	for _, s := range []State{Pending, Validating, Testing, Enforce, Demoted, RemovalRequested, Removed} {
		m.domains.WithLabelValues(string(s)).Set(float64(counts[s]))
	}
}

func (m *Metrics) roundDone() {
	if m != nil {
		m.rounds.Inc()
	}
}

func (m *Metrics) listPublished() {
	if m != nil {
		m.lists.Inc()
	}
}

func (m *Metrics) notice(result string) {
	if m != nil {
		m.notices.WithLabelValues(result).Inc()
	}
}
