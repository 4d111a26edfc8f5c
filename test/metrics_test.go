package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"postern/internal/acme/acmetest"
	"postern/internal/dns/dnstest"
)

// The alert rules and the Grafana dashboard operators are given.
const (
	alertsFile    = "../contrib/prometheus/alerts.yml"
	alertTests    = "../contrib/prometheus/alerts_test.yml"
	dashboardFile = "../contrib/grafana/postern-dashboard.json"
)

// TestAlertRules checks contrib/prometheus/alerts.yml with Prometheus's
// own promtool: the rules parse, and their unit tests (made-up series
// that must fire, or must not fire, each alert) pass.
func TestAlertRules(t *testing.T) {
	integration(t)
	promtool := needTool(t, "promtool")
	if out, err := exec.Command(promtool, "check", "rules", alertsFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.Command(promtool, "test", "rules", filepath.Base(alertTests))
	cmd.Dir = filepath.Dir(alertTests)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// dashboardExprs returns the PromQL of every panel of the dashboard.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string
		Panels []struct {
			Type, Title string
			Datasource  *struct{ UID string }
			Targets     []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: no Prometheus query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if d.Title == "" || len(exprs) < 20 {
		t.Fatalf("%s: title %q, %d queries", dashboardFile, d.Title, len(exprs))
	}
	return exprs
}

// TestDashboardQueries checks that every query of the Grafana dashboard
// is PromQL Prometheus parses: promtool checks them as recording rules
// (with the dashboard's $instance variable filled in).
func TestDashboardQueries(t *testing.T) {
	integration(t)
	promtool := needTool(t, "promtool")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range dashboardExprs(t) {
		q, _ := json.Marshal(strings.ReplaceAll(e, "$instance", ".*"))
		fmt.Fprintf(&rules, "      - record: dashboard_query_%d\n        expr: %s\n", i, q)
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Fatalf("a dashboard query does not parse: %v\n%s", err, out)
	}
}

// metricName finds metric names in PromQL and in the rules' text.
var metricName = regexp.MustCompile(`\b(?:postern|process|go)_[a-z0-9_]+`)

// TestMetricsDashboardAndAlerts runs the real binary with the features
// the alert rules and the dashboard watch (ACME against a real Pebble,
// the abuse engine, mail authentication and DKIM signing, remote
// delivery to smtp-sink), makes some traffic, scrapes /metrics, and
// checks that every metric name the rules and the dashboard use is one
// the server exports. A rule on a name the server does not export never
// fires: this is what catches a renamed metric.
func TestMetricsDashboardAndAlerts(t *testing.T) {
	integration(t)
	sinkDir := sink(t, "127.0.0.81")
	dir := t.TempDir()
	s := &server{t: t, data: filepath.Join(dir, "data"), mx: freeAddr(t), sub: freeAddr(t), subs: freeAddr(t), http: freeAddr(t)}
	s.dns = dnstest.New(t, dnstest.Zone{"mail.example.com": {dnstest.A("127.0.0.1")}})
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true})
	writeACMEConfig(t, s, p, fmt.Sprintf("http_address = %q\n", freeAddr(t))+quickBanTOML)
	s.mxAt("sink.example", "127.0.0.81")
	s.dns.ServFail("stuck.example")
	os.MkdirAll(s.data, 0o700)
	if out, err := s.run("", "dkim", "keygen", "example.com", "--selector", "s1"); err != nil {
		t.Fatalf("dkim keygen: %v\n%s", err, out)
	}
	s.start()
	waitACMEChain(t, s, p, 60*time.Second)
	s.addUser("mona@example.com", "mona-password")

	// Submission: a local, a remote and a deferred recipient, signed.
	c := mustDial(t, s.sub, "mona@example.com", "mona-password")
	for _, to := range []string{"mona@example.com", "nico@sink.example", "olga@stuck.example"} {
		if err := send(c, "mona@example.com", to, "From: mona@example.com\r\nSubject: metrics-marker\r\n\r\nhi\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()
	// Port 25: a message from outside, authenticated (SPF, DKIM, DMARC).
	mx := dialMX(t, s.mx, "client.example.net")
	if err := send(mx, "pat@example.net", "mona@example.com", "From: pat@example.net\r\nSubject: inbound\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	mx.Quit()
	// Wrong passwords from one address: a ban and an alert; then the
	// gate refuses it.
	failLogins(t, "127.0.0.82", s.subs, "mona@example.com", 2)
	if c, err := smtpsFrom("127.0.0.82", s.subs); err == nil {
		c.Close()
		t.Errorf("a banned address was let in")
	}
	waitSink(t, sinkDir, "metrics-marker")
	s.waitMaildir("mona@example.com", "Subject: inbound")

	var exported map[string]bool
	var missing []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		exported = scrapeNames(t, s.http)
		missing = missing[:0]
		used := map[string]bool{}
		rules, err := os.ReadFile(alertsFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range metricName.FindAllString(string(rules), -1) {
			used[n] = true
		}
		for _, e := range dashboardExprs(t) {
			for _, n := range metricName.FindAllString(e, -1) {
				used[n] = true
			}
		}
		for n := range used {
			if !exported[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // the deferral and the DSNs come a moment later
	}
	slices.Sort(missing)
	for _, n := range missing {
		t.Errorf("the rules or the dashboard use %s, which the server does not export", n)
	}
	if t.Failed() {
		var names []string
		for n := range exported {
			names = append(names, n)
		}
		slices.Sort(names)
		t.Logf("exported: %s", strings.Join(names, " "))
	}
}

// scrapeNames returns the metric names /metrics on addr exports: the
// families, and for histograms and summaries the series names PromQL
// sees (_bucket, _sum, _count).
func scrapeNames(t *testing.T, addr string) map[string]bool {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(metricsPage(t, addr)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	names := map[string]bool{}
	for name, f := range fams {
		names[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
	return names
}
