package smtpd

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"postern/internal/metrics"
)

// countConn counts the writes the server makes.
type countConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestPipelinedRepliesBatched checks RFC 2920 §3.2: replies to a
// pipelined group go out together, in one write, not one per command.
func TestPipelinedRepliesBatched(t *testing.T) {
	srv := &Server{
		Name: "batch", Role: RoleMX, Hostname: testHost,
		Directory: newTestDir(), Spool: &testSpool{},
		Limits: Limits{CommandTimeout: 5 * time.Second},
		Logger: slog.New(slog.DiscardHandler),
	}
	server, client := net.Pipe()
	cc := &countConn{Conn: server}
	done := make(chan struct{})
	go func() { srv.serveConn(cc); close(done) }()
	defer func() { client.Close(); <-done }()
	br := bufio.NewReader(client)
	client.SetDeadline(time.Now().Add(5 * time.Second))
	if l, _ := br.ReadString('\n'); !strings.HasPrefix(l, "220 ") {
		t.Fatalf("greeting %q", l)
	}
	before := cc.writes.Load()
	io.WriteString(client, "EHLO a.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<x@elsewhere.example>\r\nNOOP\r\n")
	var got []string
	for len(got) < 5 {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l[3] == ' ' {
			got = append(got, l[:9])
		}
	}
	want := "250 SMTPU|250 2.1.0|250 2.1.5|550 5.7.1|250 2.0.0"
	if strings.Join(got, "|") != want {
		t.Errorf("replies %q, want %q", got, want)
	}
	if n := cc.writes.Load() - before; n != 1 {
		t.Errorf("%d writes for one pipelined group, want 1", n)
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, RoleMX)
	name := f.srv.Name
	relay := value(metrics.MessagesRejected.WithLabelValues(name, "relay_denied"))
	accepted := value(metrics.MessagesAccepted.WithLabelValues(name))
	tlsOK := value(metrics.TLSHandshakes.WithLabelValues(name, "1.3", "ok"))
	conns := value(metrics.Connections.WithLabelValues(name))
	c := f.dial()
	c.startTLS()
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<a@example.net>", "250 ")
	c.do("RCPT TO:<x@elsewhere.example>", "550 5.7.1")
	c.do("RCPT TO:<bob@example.org>", "250 ")
	c.do("DATA", "354 ")
	c.do(message("From: a@example.net")+".", "250 ")
	if d := value(metrics.MessagesRejected.WithLabelValues(name, "relay_denied")) - relay; d != 1 {
		t.Errorf("relay_denied +%v", d)
	}
	if d := value(metrics.MessagesAccepted.WithLabelValues(name)) - accepted; d != 1 {
		t.Errorf("accepted +%v", d)
	}
	if d := value(metrics.TLSHandshakes.WithLabelValues(name, "1.3", "ok")) - tlsOK; d != 1 {
		t.Errorf("tls ok +%v", d)
	}
	if d := value(metrics.Connections.WithLabelValues(name)) - conns; d != 1 {
		t.Errorf("connections +%v", d)
	}
	if v := value(metrics.Sessions.WithLabelValues(name)); v != 1 {
		t.Errorf("sessions %v", v)
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
