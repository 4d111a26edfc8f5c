package admin

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"postern/internal/admission"
	"postern/internal/queue"
	"postern/internal/tlsconf"
)

// statusFixture is a status page over HTTP with a message in the
// queue, a ban, a certificate, delivery reports and an anomaly.
type statusFixture struct {
	*fixture
	hs   *httptest.Server
	cert tls.Certificate
}

const pageToken = "0123456789abcdef-token"

func newStatusFixture(t *testing.T) *statusFixture {
	f := newFixture(t)
	f.put(t, "Q1", "alice@example.com", "bob@example.net")
	waitUntil(t, "the first attempt", func() bool { return f.calls.Load() >= 1 })
	now := time.Now()
	store := admission.NewMemoryStore()
	store.PutBan(context.Background(), admission.Ban{Prefix: netip.MustParsePrefix("198.51.100.0/24"),
		Until: now.Add(3 * time.Hour), Reason: "<script>alert(1)</script>", Created: now, Strikes: 2})
	certFile, keyFile, err := tlsconf.EnsureSelfSigned(t.TempDir(), []string{"mail.example.com"}, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ev := NewEvents(10)
	ev.Accepted(now)
	ev.Delivery(queue.Report{Time: now, ID: "D1", Rcpt: "carol@example.org", Outcome: queue.OutcomeDelivered,
		Attempt: 1, Status: "2.0.0", RemoteMTA: "mx.example.org", Delay: 1500 * time.Millisecond,
		Relay: queue.Relay{Addr: "192.0.2.25:25", TLSVersion: "TLS 1.3", TLSVerification: "mta-sts",
			Reply: "250 2.0.0 Ok: queued as 4Fq1"}})
	ev.Delivery(queue.Report{Time: now, ID: "Q1", Rcpt: "bob@example.net", Outcome: queue.OutcomeDeferred,
		Attempt: 1, Status: "4.0.0", Local: true, Err: "mailbox <b>locked</b>"})
	ev.Alert(admission.Alert{Time: now, Kind: admission.AlertStuffing, Remote: netip.MustParseAddr("203.0.113.5"),
		Count: 7, Window: 10 * time.Minute})
	srv := &Server{Spool: f.spool, Runner: f.runner, Bans: store, Logger: quiet(), Events: ev,
		Certs: certList{"tls/cert.pem": &cert}, Version: "v1.2.3-test", Started: now.Add(-90 * time.Minute),
		Listeners: []ListenerInfo{{Name: "mx", Role: "mx", Address: "127.0.0.1:25"}}}
	hs := httptest.NewServer(srv.HTTPHandler(pageToken))
	t.Cleanup(hs.Close)
	return &statusFixture{fixture: f, hs: hs, cert: cert}
}

// get fetches path with the token as basic auth, as a browser does.
func (f *statusFixture) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", f.hs.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("", pageToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if strings.Contains(page, "<script") {
		t.Errorf("%s has a script:\n%s", path, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("%s: CSP %q", path, csp)
	}
	return resp, page
}

func contains(t *testing.T, what, page string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

// TestStatusPage renders the page and checks what it shows, that
// hostile text is escaped, and that it has no script.
func TestStatusPage(t *testing.T) {
	f := newStatusFixture(t)
	resp, page := f.get(t, "/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	contains(t, "the page", page,
		`id="queue-depth">1<`, `<span id="version">Postern v1.2.3-test</span>`, `id="uptime">up 1h 30m<`,
		`<a href="/message/Q1"><code>Q1</code></a> from &lt;alice@example.com&gt;`,
		`<td>1 deferred</td>`, "mailbox locked",
		"carol@example.org", "mx.example.org", `[192.0.2.25:25]`, "mta-sts", "250 2.0.0 Ok: queued as 4Fq1", "1.5s",
		`<a href="/message/D1"><code>D1</code></a>`,
		"mailbox &lt;b&gt;locked&lt;/b&gt;",
		`<svg class="chart" id="activity"`, `id="total-accepted">1<`, `id="total-delivered">1<`, `id="total-deferred">1<`,
		`<td>mx</td><td>mx</td><td><code>127.0.0.1:25</code></td>`,
		"198.51.100.0/24", "&lt;script&gt;alert(1)&lt;/script&gt;",
		"tls/cert.pem", "mail.example.com", f.cert.Leaf.NotAfter.UTC().Format("2006-01-02 15:04:05Z"),
		"stuffing", "203.0.113.5", "7 usernames tried within 10m0s",
		`<meta http-equiv="refresh" content="30">`,
		`<a href="/?outcome=deferred">deferred (1)</a>`, `<span class="cur">all (2)</span>`,
	)
}

// TestStatusPageFilter shows only the deliveries of one outcome, and
// answers 400, without repeating it, to a filter it does not know.
func TestStatusPageFilter(t *testing.T) {
	f := newStatusFixture(t)
	resp, page := f.get(t, "/?outcome=deferred")
	if resp.StatusCode != 200 {
		t.Fatalf("%d", resp.StatusCode)
	}
	contains(t, "the deferred page", page, "bob@example.net", `<span class="cur">deferred (1)</span>`, `<a href="/">all (2)</a>`)
	if strings.Contains(page, "carol@example.org") {
		t.Errorf("the deferred filter shows a delivered recipient")
	}
	_, page = f.get(t, "/?outcome=failed")
	contains(t, "the failed page", page, "No failed delivery among the last ones kept.")
	for _, q := range []string{"?outcome=%3Cscript%3E", "?outcome=delivered&outcome=failed", "?x=1", "?outcome=delivered&x=%3Cb%3E"} {
		resp, page := f.get(t, "/"+q)
		if resp.StatusCode != 400 || !strings.Contains(page, "Unknown delivery filter") {
			t.Errorf("%s: %d\n%s", q, resp.StatusCode, page)
		}
		if strings.Contains(page, "script") || strings.Contains(page, "<b>") || strings.Contains(page, "&lt;b") {
			t.Errorf("%s: the page repeats the query:\n%s", q, page)
		}
	}
}

// TestMessagePage shows one message's envelope, recipients, reports
// and header; refuses ids that cannot be queue ids without repeating
// them; and says 404 for an id not in the spool.
func TestMessagePage(t *testing.T) {
	f := newStatusFixture(t)
	resp, page := f.get(t, "/message/Q1")
	if resp.StatusCode != 200 {
		t.Fatalf("%d\n%s", resp.StatusCode, page)
	}
	contains(t, "the detail view", page,
		"<title>Postern: message Q1</title>", "&lt;alice@example.com&gt;", "8BITMIME, SMTPUTF8, REQUIRETLS",
		"<code>192.0.2.7:40000</code>, EHLO laptop.example", "<dd>alice</dd>", "<dd>submission</dd>",
		`<td>bob@example.net</td><td><span class="badge b-deferred">deferred</span>`, "mailbox locked",
		`id="reports"`, "mailbox &lt;b&gt;locked&lt;/b&gt;",
		`<pre id="headers">Received: from laptop.example`+"\r\n"+`Subject: test Q1`+"\r\n</pre>")
	for _, p := range []string{"/message/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/message/a.b", "/message/" + strings.Repeat("a", 65),
		"/message/..%2Fqueue", "/message/a%00b"} {
		resp, page := f.get(t, p)
		if resp.StatusCode != 400 || !strings.Contains(page, "That is not a queue id") {
			t.Errorf("%s: %d\n%s", p, resp.StatusCode, page)
		}
		if strings.Contains(page, "alert(1)") || strings.Contains(page, "a.b") || strings.Contains(page, "queue<") {
			t.Errorf("%s: the page repeats the id:\n%s", p, page)
		}
	}
	resp, page = f.get(t, "/message/NOSUCH0")
	if resp.StatusCode != 404 || !strings.Contains(page, "No message NOSUCH0 in the spool") {
		t.Errorf("unknown id: %d\n%s", resp.StatusCode, page)
	}
	// The detail view is a page: basic auth opens it, as it opens /,
	// and nothing else.
	req, _ := http.NewRequest("POST", f.hs.URL+"/message/Q1", nil)
	req.SetBasicAuth("", pageToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("POST with basic auth: %v %v", resp.StatusCode, err)
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0.00s", 50 * time.Millisecond: "0.05s", 1500 * time.Millisecond: "1.5s", 42 * time.Second: "42s",
		3*time.Minute + 2*time.Second: "3m 2s",
	} {
		if got := seconds(d); got != want {
			t.Errorf("seconds(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestShorten(t *testing.T) {
	if got := shorten("héllo wörld", 2); got != "h…" {
		t.Errorf("shorten = %q", got)
	}
	if got := shorten("short", 10); got != "short" {
		t.Errorf("shorten = %q", got)
	}
}
