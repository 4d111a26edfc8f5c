package admin

// The status page, GET /: server-rendered HTML (html/template, no
// script) for an administrator's browser: the server's version, uptime
// and listeners; a chart of the messages accepted, delivered, deferred
// and bounced per minute over the last hour (inline SVG); the queue,
// each id linked to its detail view (GET /message/{id}, detail.go); the
// recent deliveries, filtered by outcome with ?outcome=delivered,
// deferred or failed (plain links); the certificates' expiry; the bans
// and the auth anomalies of the last hour. It refreshes itself every 30
// seconds (a meta refresh).
//
// Everything in a URL is hostile: an id or filter that is not one of
// the known forms gets 400 with a page that does not repeat it, and
// every value shown is escaped by html/template.

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"postern/internal/queue"
)

// CertSource lists the certificates served, for the status page;
// *tlsconf.Certs implements it.
type CertSource interface {
	// Certificates returns the certificates served now, by name.
	Certificates() map[string]*tls.Certificate
}

// ListenerInfo describes one listener for the status page.
type ListenerInfo struct {
	// Name, Role ("mx", "submission", "submissions", "http", "admin")
	// and Address ("host:port") of the listener.
	Name, Role, Address string
}

// anomalyWindow is how far back the status page shows auth anomalies.
const anomalyWindow = time.Hour

// oldestWarn is the age from which the oldest message is highlighted.
const oldestWarn = time.Hour

// certWarn is how close to expiry a certificate is shown as a warning.
const certWarn = 14 * 24 * time.Hour

// queueShown is how many messages of the queue the page lists.
const queueShown = 50

// outcomes are the delivery filters of the page, in link order.
var outcomes = []string{queue.OutcomeDelivered, queue.OutcomeDeferred, queue.OutcomeFailed}

// statusData is what the page template shows.
type statusData struct {
	Now          time.Time
	Version      string
	Uptime       string
	Listeners    []ListenerInfo
	Chart        *chart
	Depth        int
	Recipients   int
	Oldest       *Message
	OldestAge    string
	OldestWarn   bool
	Queue        []queueRow
	QueueMore    int
	Filter       string
	Filters      []filterLink
	Deliveries   []queue.Report
	NoEvents     bool
	Certs        []certRow
	Bans         []banRow
	BansError    string
	Anomalies    []Anomaly
	AnomalySince time.Time
}

type queueRow struct {
	Message
	Age     string
	States  string
	LastErr string
}

type filterLink struct {
	Label, Query string
	Count        int
	Current      bool
}

type certRow struct {
	Name     string
	Names    string
	NotAfter time.Time
	Left     string
	Warn     bool
}

type banRow struct {
	BanInfo
	Left string
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	filter, ok := outcomeFilter(r)
	if !ok {
		s.badRequest(w, "Unknown delivery filter: the outcome may be delivered, deferred or failed.")
		return
	}
	d := statusData{Now: now, Version: s.Version, Listeners: s.Listeners, Filter: filter,
		AnomalySince: now.Add(-anomalyWindow)}
	if !s.Started.IsZero() {
		d.Uptime = age(now.Sub(s.Started))
	}
	s.queueData(&d, now)
	if s.Events != nil {
		d.Chart = newChart(s.Events.Activity(now))
		all := s.Events.Deliveries()
		d.Filters = append(d.Filters, filterLink{Label: "all", Query: "/", Count: len(all), Current: filter == ""})
		for _, o := range outcomes {
			n := 0
			for _, rep := range all {
				if rep.Outcome == o {
					n++
				}
			}
			d.Filters = append(d.Filters, filterLink{Label: o, Query: "/?outcome=" + o, Count: n, Current: filter == o})
		}
		for _, rep := range all {
			if filter == "" || rep.Outcome == filter {
				d.Deliveries = append(d.Deliveries, rep)
			}
		}
		d.Anomalies = s.Events.Anomalies(d.AnomalySince)
	} else {
		d.NoEvents = true
	}
	d.Certs = s.certRows(now)
	if s.Bans == nil {
		d.BansError = "bans are not available on this server"
	} else if bans, err := s.Bans.Bans(r.Context(), now); err != nil {
		s.log.Error("admin: status: bans", "err", err)
		d.BansError = "the ban store did not answer: " + err.Error()
	} else {
		for _, b := range bans {
			d.Bans = append(d.Bans, banRow{BanInfo: banInfo(b), Left: age(b.Until.Sub(now))})
		}
	}
	s.page(w, http.StatusOK, statusPage, d)
}

// outcomeFilter returns the ?outcome= filter of r, "" for none; ok is
// false for anything but one of outcomes.
func outcomeFilter(r *http.Request) (string, bool) {
	q := r.URL.Query()
	if len(q) == 0 {
		return "", true
	}
	v, has := q["outcome"]
	if len(q) != 1 || !has || len(v) != 1 {
		return "", false
	}
	if slices.Contains(outcomes, v[0]) {
		return v[0], true
	}
	return "", v[0] == ""
}

// queueData fills in the queue's depth, oldest message and first rows.
func (s *Server) queueData(d *statusData, now time.Time) {
	for _, it := range s.Spool.List() {
		d.Depth++
		waiting := 0
		for _, rc := range it.Recipients {
			if !rc.State.Status.Final() {
				waiting++
			}
		}
		d.Recipients += waiting
		m := message(it)
		if d.Oldest == nil || it.ReceivedAt.Before(d.Oldest.ReceivedAt) {
			d.Oldest = &m
		}
		if len(d.Queue) >= queueShown {
			d.QueueMore++
			continue
		}
		d.Queue = append(d.Queue, queueRow{Message: m, Age: age(now.Sub(it.ReceivedAt)),
			States: stateSummary(m.Recipients), LastErr: lastError(m.Recipients)})
	}
	if d.Oldest != nil {
		d.OldestAge = age(now.Sub(d.Oldest.ReceivedAt))
		d.OldestWarn = now.Sub(d.Oldest.ReceivedAt) > oldestWarn
	}
}

// stateSummary counts recipients by state: "2 deferred, 1 delivered".
func stateSummary(rs []Recipient) string {
	var order []string
	n := map[string]int{}
	for _, r := range rs {
		if n[r.Status] == 0 {
			order = append(order, r.Status)
		}
		n[r.Status]++
	}
	parts := make([]string, len(order))
	for i, st := range order {
		parts[i] = fmt.Sprintf("%d %s", n[st], st)
	}
	return strings.Join(parts, ", ")
}

// lastError returns the last error of the first recipient that has one.
func lastError(rs []Recipient) string {
	for _, r := range rs {
		if r.LastError != "" {
			return r.LastError
		}
	}
	return ""
}

// certRows lists the certificates served, soonest expiry first.
func (s *Server) certRows(now time.Time) []certRow {
	if s.Certs == nil {
		return nil
	}
	var rows []certRow
	for name, c := range s.Certs.Certificates() {
		if c == nil || c.Leaf == nil {
			continue
		}
		left := c.Leaf.NotAfter.Sub(now)
		names := c.Leaf.DNSNames
		if len(names) == 0 && c.Leaf.Subject.CommonName != "" {
			names = []string{c.Leaf.Subject.CommonName}
		}
		row := certRow{Name: name, Names: strings.Join(names, ", "), NotAfter: c.Leaf.NotAfter,
			Left: age(left), Warn: left < certWarn}
		if left < 0 {
			row.Left = "expired " + age(-left) + " ago"
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b certRow) int { return a.NotAfter.Compare(b.NotAfter) })
	return rows
}

// page renders t with d and sends it with the page's security headers.
func (s *Server) page(w http.ResponseWriter, code int, t *template.Template, d any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		s.log.Error("admin: status page", "err", err)
		http.Error(w, "status page failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// badRequest answers 400 with msg, a fixed text: never what the
// request said.
func (s *Server) badRequest(w http.ResponseWriter, msg string) {
	s.page(w, http.StatusBadRequest, errorPage, struct{ Title, Msg string }{"Bad request", msg})
}

// age formats a duration for people: "3d 4h", "2h 5m", "4m 2s", "42s".
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	const day = 24 * time.Hour
	switch {
	case d >= day:
		return fmt.Sprintf("%dd %dh", d/day, d%day/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm %ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// seconds formats a short duration as Postfix's delays do: "0.05s",
// "1.2s"; a minute or more as age does.
func seconds(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return age(d)
	case d >= 10*time.Second:
		return fmt.Sprintf("%.0fs", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
