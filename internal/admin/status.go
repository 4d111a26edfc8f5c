package admin

// The status page, GET /: server-rendered HTML (html/template, no
// script) for an administrator's browser: the queue's depth and oldest
// message, the recent deliveries, the certificates' expiry, the bans and
// the auth anomalies of the last hour. It refreshes itself every 30
// seconds (a meta refresh).

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"
)

// CertSource lists the certificates served, for the status page;
// *tlsconf.Certs implements it.
type CertSource interface {
	// Certificates returns the certificates served now, by name.
	Certificates() map[string]*tls.Certificate
}

// anomalyWindow is how far back the status page shows auth anomalies.
const anomalyWindow = time.Hour

// oldestWarn is the age from which the oldest message is highlighted.
const oldestWarn = time.Hour

// certWarn is how close to expiry a certificate is shown as a warning.
const certWarn = 14 * 24 * time.Hour

// statusData is what the page template shows.
type statusData struct {
	Version      string
	Now          time.Time
	Depth        int
	Recipients   int
	Oldest       *Message
	OldestAge    string
	OldestWarn   bool
	Deliveries   []Delivery
	NoEvents     bool
	Certs        []certRow
	Bans         []banRow
	BansError    string
	Anomalies    []Anomaly
	AnomalySince time.Time
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
	d := statusData{Version: s.Version, Now: now, AnomalySince: now.Add(-anomalyWindow)}
	for _, it := range s.Spool.List() {
		d.Depth++
		for _, rc := range it.Recipients {
			if !rc.State.Status.Final() {
				d.Recipients++
			}
		}
		if d.Oldest == nil || it.ReceivedAt.Before(d.Oldest.ReceivedAt) {
			m := message(it)
			d.Oldest = &m
		}
	}
	if d.Oldest != nil {
		d.OldestAge = age(now.Sub(d.Oldest.ReceivedAt))
		d.OldestWarn = now.Sub(d.Oldest.ReceivedAt) > oldestWarn
	}
	if s.Events != nil {
		d.Deliveries = s.Events.Deliveries()
		d.Anomalies = s.Events.Anomalies(d.AnomalySince)
	} else {
		d.NoEvents = true
	}
	if s.Certs != nil {
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
			d.Certs = append(d.Certs, row)
		}
		slices.SortFunc(d.Certs, func(a, b certRow) int { return a.NotAfter.Compare(b.NotAfter) })
	}
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
	var buf bytes.Buffer
	if err := statusPage.Execute(&buf, d); err != nil {
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
	w.Write(buf.Bytes())
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

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ts": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="30">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Postern status</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.4em 0 .4em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: .2em .8em .2em 0; vertical-align: top; }
th { font-weight: 600; color: #555; }
td.num { text-align: right; }
td.time { white-space: nowrap; }
.muted { color: #777; }
.warn { color: #a40; font-weight: 600; }
.ok { color: #070; }
.big { font-size: 1.6em; font-weight: 600; }
code { font-size: .95em; }
</style>
</head>
<body>
<h1>Postern status</h1>
<p class="muted">{{with .Version}}<span id="version">Postern {{.}}</span>. {{end}}As of {{ts .Now}}; this page refreshes every 30 seconds.</p>

<h2>Queue</h2>
<p><span class="big" id="queue-depth">{{.Depth}}</span> message{{if ne .Depth 1}}s{{end}} in the queue,
<span id="queue-recipients">{{.Recipients}}</span> recipient{{if ne .Recipients 1}}s{{end}} waiting.</p>
{{with .Oldest}}<p id="queue-oldest">Oldest: <code>{{.ID}}</code> from &lt;{{.From}}&gt;, received {{ts .ReceivedAt}},
<span class="{{if $.OldestWarn}}warn{{end}}">{{$.OldestAge}}</span> ago.</p>
{{else}}<p id="queue-oldest" class="muted">The queue is empty.</p>{{end}}

<h2>Recent deliveries</h2>
{{if .NoEvents}}<p class="muted">Not recorded on this server.</p>
{{else if .Deliveries}}<table id="deliveries">
<tr><th>time</th><th>id</th><th>recipient</th><th>outcome</th><th>via</th><th>error</th></tr>
{{range .Deliveries}}<tr><td class="time">{{ts .Time}}</td><td><code>{{.ID}}</code></td><td>{{.Rcpt}}</td>
<td class="{{if eq .Outcome "delivered"}}ok{{else}}warn{{end}}">{{.Outcome}}</td>
<td>{{if .Local}}local mailbox{{else}}{{.RemoteMTA}}{{end}}</td><td>{{.Error}}</td></tr>
{{end}}</table>
{{else}}<p class="muted" id="deliveries">No delivery since the server started.</p>{{end}}

<h2>Certificates</h2>
{{if .Certs}}<table id="certificates">
<tr><th>certificate</th><th>names</th><th>expires</th><th>left</th></tr>
{{range .Certs}}<tr><td><code>{{.Name}}</code></td><td>{{.Names}}</td><td>{{ts .NotAfter}}</td>
<td class="{{if .Warn}}warn{{else}}ok{{end}}">{{.Left}}</td></tr>
{{end}}</table>
{{else}}<p class="warn" id="certificates">No certificate is loaded.</p>{{end}}

<h2>Bans</h2>
{{if .BansError}}<p class="warn" id="bans">{{.BansError}}</p>
{{else if .Bans}}<table id="bans">
<tr><th>prefix</th><th>until</th><th>left</th><th>strikes</th><th>manual</th><th>reason</th></tr>
{{range .Bans}}<tr><td><code>{{.Prefix}}</code></td><td>{{ts .Until}}</td><td>{{.Left}}</td>
<td class="num">{{.Strikes}}</td><td>{{if .Manual}}yes{{else}}no{{end}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>
{{else}}<p class="muted" id="bans">No address is banned.</p>{{end}}

<h2>Auth anomalies in the last hour</h2>
{{if .NoEvents}}<p class="muted">Not recorded on this server.</p>
{{else if .Anomalies}}<table id="anomalies">
<tr><th>time</th><th>event</th><th>kind</th><th>subject</th><th>strikes</th><th>reason</th></tr>
{{range .Anomalies}}<tr><td class="time">{{ts .Time}}</td><td class="warn">{{.Event}}</td><td>{{.Kind}}</td>
<td><code>{{.Subject}}</code></td><td class="num">{{if .Strikes}}{{.Strikes}}{{end}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>
{{else}}<p class="muted" id="anomalies">None since {{ts .AnomalySince}}.</p>{{end}}
</body>
</html>
`))
