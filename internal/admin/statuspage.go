package admin

import (
	"html/template"
	"strings"
	"time"
	"unicode/utf8"
)

// The templates of the status page (status.go), the detail view
// (detail.go) and their error page. They share "head" (the style
// sheet: inline, as the Content-Security-Policy allows styles only so)
// and "top" (the page header: the server's name, version and uptime).
var pages = template.Must(template.New("pages").Funcs(template.FuncMap{
	"ts":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"hm":      func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"secs":    seconds,
	"short":   func(s string) string { return shorten(s, 160) },
	"nonzero": func(t time.Time) bool { return !t.IsZero() },
}).Parse(`
{{define "head"}}<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg2: #f6f8fa;
  --ok: #1a7f37; --warn: #bc4c00; --bad: #cf222e; --acc: #0969da; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: var(--fg); }
header { background: #24292f; color: #fff; padding: .7em 1.5em; display: flex; flex-wrap: wrap;
  align-items: baseline; gap: .4em 1.6em; }
header h1 { font-size: 1.25em; margin: 0; }
header h1 a { color: #fff; text-decoration: none; }
header .meta { color: #c9d1d9; font-size: .92em; }
main { padding: .4em 1.5em 2em; max-width: 1280px; }
h2 { font-size: 1.05em; margin: 1.6em 0 .5em; padding-bottom: .25em; border-bottom: 1px solid var(--line); }
table { border-collapse: collapse; font-size: .93em; }
th, td { text-align: left; padding: .28em .9em .28em .4em; vertical-align: top; border-bottom: 1px solid #eaeef2; }
th { font-weight: 600; color: var(--muted); background: var(--bg2); white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.time, td.nowrap { white-space: nowrap; }
td.err { color: var(--bad); max-width: 34em; overflow-wrap: anywhere; }
a { color: var(--acc); }
code { font: .93em ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { font: .88em/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; background: var(--bg2);
  border: 1px solid var(--line); padding: .7em; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.warn { color: var(--warn); font-weight: 600; }
.ok { color: var(--ok); }
.cards { display: flex; flex-wrap: wrap; gap: .8em; margin: 1em 0 .4em; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .5em 1em; min-width: 8.5em; }
.card .n { font-size: 1.7em; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .l { color: var(--muted); font-size: .9em; }
.badge { display: inline-block; padding: 0 .5em; border-radius: 1em; font-size: .88em; font-weight: 600; }
.b-delivered { background: #dafbe1; color: var(--ok); }
.b-deferred, .b-held { background: #fff1e5; color: var(--warn); }
.b-failed, .b-removed, .b-ban, .b-alert { background: #ffebe9; color: var(--bad); }
.b-pending { background: #ddf4ff; color: var(--acc); }
.filters a, .filters span { margin-right: .9em; }
.filters .cur { font-weight: 600; color: var(--fg); }
svg.chart { display: block; max-width: 100%; height: auto; }
svg.chart text { font: 12px system-ui, sans-serif; fill: var(--muted); }
svg.chart text.name { fill: var(--fg); font-weight: 600; }
svg.chart line { stroke: var(--line); stroke-width: 1; }
.s-acc { fill: #0969da; } .s-del { fill: #2da44e; } .s-def { fill: #d4a72c; } .s-bou { fill: #cf222e; }
dl.env { display: grid; grid-template-columns: max-content auto; gap: .2em 1.2em; margin: 0; }
dl.env dt { color: var(--muted); }
dl.env dd { margin: 0; overflow-wrap: anywhere; }
</style>{{end}}

{{define "top"}}<header><h1><a href="/">Postern status</a></h1>
{{with .Version}}<span class="meta"><span id="version">Postern {{.}}</span></span>{{end}}
{{with .Uptime}}<span class="meta" id="uptime">up {{.}}</span>{{end}}
<span class="meta">as of {{ts .Now}}</span></header>{{end}}

{{define "status"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta http-equiv="refresh" content="30">
<title>Postern status</title>
{{template "head"}}
</head>
<body>
{{template "top" .}}
<main>
<div class="cards">
<div class="card"><div class="n" id="queue-depth">{{.Depth}}</div><div class="l">message{{if ne .Depth 1}}s{{end}} in the queue</div></div>
<div class="card"><div class="n" id="queue-recipients">{{.Recipients}}</div><div class="l">recipient{{if ne .Recipients 1}}s{{end}} waiting</div></div>
<div class="card"><div class="n{{if .OldestWarn}} warn{{end}}">{{if .Oldest}}{{.OldestAge}}{{else}}–{{end}}</div><div class="l">oldest message</div></div>
{{with .Chart}}{{range .Rows}}<div class="card"><div class="n" id="total-{{.Name}}">{{.Total}}</div><div class="l">{{.Name}}, last hour</div></div>
{{end}}{{end}}</div>

<h2>Messages per minute, last hour</h2>
{{with .Chart}}<svg class="chart" id="activity" role="img" aria-labelledby="activity-title" xmlns="http://www.w3.org/2000/svg"
 width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}">
<title id="activity-title">{{.Title}}; the tallest bar is {{.Max}}</title>
{{range .Rows}}<text class="name" x="0" y="{{.LabelY}}">{{.Name}}</text><text x="90" y="{{.LabelY}}">{{.Total}}</text>
<line x1="150" x2="{{$.Chart.Width}}" y1="{{.Base}}" y2="{{.Base}}"/>
{{$c := .Class}}{{range .Bars}}<rect class="{{$c}}" x="{{.X}}" y="{{.Y}}" width="{{$.Chart.BarW}}" height="{{.H}}"><title>{{.Title}}</title></rect>{{end}}
{{end}}{{range .Ticks}}<text x="{{.X}}" y="{{$.Chart.Height}}" dy="-5" text-anchor="middle">{{.Label}}</text>{{end}}
</svg>
<p class="muted">One bar per minute, on one scale: the tallest bar is {{.Max}} message{{if ne .Max 1}}s{{end}} (delivery outcomes count recipients). Hover a bar for its count.</p>
{{else}}<p class="muted">Not recorded on this server.</p>{{end}}

<h2>Queue</h2>
{{with .Oldest}}<p id="queue-oldest">Oldest: <a href="/message/{{.ID}}"><code>{{.ID}}</code></a> from &lt;{{.From}}&gt;, received {{ts .ReceivedAt}},
<span class="{{if $.OldestWarn}}warn{{end}}">{{$.OldestAge}}</span> ago.</p>
{{else}}<p id="queue-oldest" class="muted">The queue is empty.</p>{{end}}
{{if .Queue}}<table id="queue">
<tr><th>id</th><th>from</th><th>received</th><th>age</th><th>recipients</th><th>last error</th></tr>
{{range .Queue}}<tr><td><a href="/message/{{.ID}}"><code>{{.ID}}</code></a>{{if .Held}} <span class="badge b-held">held</span>{{end}}</td>
<td>{{if .From}}{{.From}}{{else}}<span class="muted">&lt;&gt;</span>{{end}}</td><td class="time">{{ts .ReceivedAt}}</td><td class="nowrap">{{.Age}}</td>
<td>{{.States}}</td><td class="err">{{short .LastErr}}</td></tr>
{{end}}</table>
{{if .QueueMore}}<p class="muted">And {{.QueueMore}} more (<code>postern queue list</code> shows them all).</p>{{end}}{{end}}

<h2>Recent deliveries</h2>
{{if .NoEvents}}<p class="muted">Not recorded on this server.</p>
{{else}}<p class="filters" id="filters">Show: {{range .Filters}}{{if .Current}}<span class="cur">{{.Label}} ({{.Count}})</span>{{else}}<a href="{{.Query}}">{{.Label}} ({{.Count}})</a>{{end}}{{end}}</p>
{{if .Deliveries}}<table id="deliveries">
<tr><th>time</th><th>id</th><th>recipient</th><th>outcome</th><th>try</th><th>delay</th><th>relay</th><th>tls</th><th>reply or error</th></tr>
{{range .Deliveries}}<tr><td class="time">{{ts .Time}}</td><td><a href="/message/{{.ID}}"><code>{{.ID}}</code></a></td><td>{{.Rcpt}}</td>
<td><span class="badge b-{{.Outcome}}">{{.Outcome}}</span> <span class="muted">{{.Status}}</span></td><td class="num">{{.Attempt}}</td>
<td class="nowrap">{{secs .Delay}}</td>
<td>{{if .Local}}local mailbox{{else}}{{.RemoteMTA}}{{with .Relay.Addr}} <span class="muted">[{{.}}]</span>{{end}}{{end}}</td>
<td>{{.Relay.TLSVerification}}{{with .Relay.TLSVersion}} <span class="muted">{{.}}</span>{{end}}</td>
<td{{if .Err}} class="err"{{end}}>{{if .Err}}{{short .Err}}{{else}}{{short .Relay.Reply}}{{end}}</td></tr>
{{end}}</table>
{{else if .Filter}}<p class="muted" id="deliveries">No {{.Filter}} delivery among the last ones kept.</p>
{{else}}<p class="muted" id="deliveries">No delivery since the server started.</p>{{end}}{{end}}

<h2>Listeners</h2>
{{if .Listeners}}<table id="listeners">
<tr><th>name</th><th>role</th><th>address</th></tr>
{{range .Listeners}}<tr><td>{{.Name}}</td><td>{{.Role}}</td><td><code>{{.Address}}</code></td></tr>
{{end}}</table>
{{else}}<p class="muted" id="listeners">Not known on this server.</p>{{end}}

<h2>Certificates</h2>
{{if .Certs}}<table id="certificates">
<tr><th>certificate</th><th>names</th><th>expires</th><th>left</th></tr>
{{range .Certs}}<tr><td><code>{{.Name}}</code></td><td>{{.Names}}</td><td class="time">{{ts .NotAfter}}</td>
<td class="{{if .Warn}}warn{{else}}ok{{end}}">{{.Left}}</td></tr>
{{end}}</table>
{{else}}<p class="warn" id="certificates">No certificate is loaded.</p>{{end}}

<h2>Bans</h2>
{{if .BansError}}<p class="warn" id="bans">{{.BansError}}</p>
{{else if .Bans}}<table id="bans">
<tr><th>prefix</th><th>until</th><th>left</th><th>strikes</th><th>manual</th><th>reason</th></tr>
{{range .Bans}}<tr><td><code>{{.Prefix}}</code></td><td class="time">{{ts .Until}}</td><td>{{.Left}}</td>
<td class="num">{{.Strikes}}</td><td>{{if .Manual}}yes{{else}}no{{end}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>
{{else}}<p class="muted" id="bans">No address is banned.</p>{{end}}

<h2>Auth anomalies in the last hour</h2>
{{if .NoEvents}}<p class="muted">Not recorded on this server.</p>
{{else if .Anomalies}}<table id="anomalies">
<tr><th>time</th><th>event</th><th>kind</th><th>subject</th><th>strikes</th><th>reason</th></tr>
{{range .Anomalies}}<tr><td class="time">{{ts .Time}}</td><td><span class="badge b-{{.Event}}">{{.Event}}</span></td><td>{{.Kind}}</td>
<td><code>{{.Subject}}</code></td><td class="num">{{if .Strikes}}{{.Strikes}}{{end}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>
{{else}}<p class="muted" id="anomalies">None since {{ts .AnomalySince}}.</p>{{end}}
</main>
</body>
</html>
{{end}}

{{define "detail"}}<!DOCTYPE html>
<html lang="en">
<head>
<title>Postern: message {{.ID}}</title>
{{template "head"}}
</head>
<body>
<header><h1><a href="/">Postern status</a></h1><span class="meta">message <code>{{.ID}}</code></span></header>
<main>
<p><a href="/">← back to the status page</a></p>
<h2>Envelope</h2>
<dl class="env" id="envelope">
<dt>queue id</dt><dd><code>{{.ID}}</code>{{if .Done}} <span class="muted">(done: no recipient left to deliver)</span>{{end}}</dd>
<dt>sender</dt><dd>{{if .From}}&lt;{{.From}}&gt;{{else}}&lt;&gt; (the null sender: a bounce){{end}}</dd>
<dt>received</dt><dd>{{ts .ReceivedAt}}, {{.Age}} ago</dd>
<dt>size</dt><dd>{{.Size}} bytes, body {{.Body}}{{if .SMTPUTF8}}, SMTPUTF8{{end}}{{if .RequireTLS}}, REQUIRETLS{{end}}</dd>
<dt>listener</dt><dd>{{.Listener}}</dd>
{{with .Remote}}<dt>client</dt><dd><code>{{.}}</code>{{with $.Helo}}, EHLO {{.}}{{end}}</dd>{{end}}
{{with .AuthUser}}<dt>user</dt><dd>{{.}}</dd>{{end}}
{{if .Held}}<dt>held</dt><dd class="warn">{{.HoldReason}}</dd>{{end}}
</dl>
<h2>Recipients</h2>
<table id="recipients">
<tr><th>recipient</th><th>state</th><th>tries</th><th>next try</th><th>updated</th><th>code</th><th>server</th><th>last error</th></tr>
{{range .Recipients}}<tr><td>{{.Addr}}</td><td><span class="badge b-{{.Status}}">{{.Status}}</span>{{if .Warned}} <span class="muted">warned</span>{{end}}</td>
<td class="num">{{.Attempts}}</td><td class="time">{{if nonzero .NextAttempt}}{{ts .NextAttempt}}{{end}}</td>
<td class="time">{{if nonzero .Updated}}{{ts .Updated}}{{end}}</td><td>{{.Code}}</td><td>{{.RemoteMTA}}</td>
<td class="err">{{if .LastError}}{{.LastError}}{{else}}{{.Diagnostic}}{{end}}</td></tr>
{{end}}</table>
{{if .Reports}}<h2>Delivery attempts kept since the server started</h2>
<table id="reports">
<tr><th>time</th><th>recipient</th><th>outcome</th><th>try</th><th>delay</th><th>queue · connect · transmit</th><th>relay</th><th>tls</th><th>reply or error</th></tr>
{{range .Reports}}<tr><td class="time">{{ts .Time}}</td><td>{{.Rcpt}}</td><td><span class="badge b-{{.Outcome}}">{{.Outcome}}</span> <span class="muted">{{.Status}}</span></td>
<td class="num">{{.Attempt}}</td><td class="nowrap">{{secs .Delay}}</td>
<td class="nowrap">{{secs .QueueWait}} · {{secs .Relay.Connect}} · {{secs .Relay.Transmit}}</td>
<td>{{if .Local}}local mailbox{{else}}{{.RemoteMTA}}{{with .Relay.Addr}} <span class="muted">[{{.}}]</span>{{end}}{{end}}</td>
<td>{{.Relay.TLSVerification}}{{if .Relay.TLSVersion}} <span class="muted">{{.Relay.TLSVersion}} {{.Relay.TLSCipher}}</span>{{end}}</td>
<td{{if .Err}} class="err"{{end}}>{{if .Err}}{{.Err}}{{else}}{{.Relay.Reply}}{{end}}</td></tr>
{{end}}</table>{{end}}
<h2>Header</h2>
<pre id="headers">{{.Headers}}</pre>
</main>
</body>
</html>
{{end}}

{{define "error"}}<!DOCTYPE html>
<html lang="en">
<head>
<title>Postern: {{.Title}}</title>
{{template "head"}}
</head>
<body>
<header><h1><a href="/">Postern status</a></h1></header>
<main>
<h2>{{.Title}}</h2>
<p id="error">{{.Msg}}</p>
<p><a href="/">← back to the status page</a></p>
</main>
</body>
</html>
{{end}}`))

var (
	statusPage = pages.Lookup("status")
	detailPage = pages.Lookup("detail")
	errorPage  = pages.Lookup("error")
)

// shorten cuts s to at most n bytes (on a rune boundary), with "…".
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.TrimSpace(s[:n]) + "…"
}
