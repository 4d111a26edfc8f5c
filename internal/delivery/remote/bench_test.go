package remote

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"testing"
	"time"

	"postern/internal/delivery/policy"
	"postern/internal/dns/dnstest"
	"postern/internal/smtp"
	"postern/internal/testcert"
)

// BenchmarkDeliverPooled delivers one-recipient messages from parallel
// goroutines over pooled sessions (MaxConnsPerHost 10), to the fake
// server and to Postfix's smtp-sink; it reports messages per second.
func BenchmarkDeliverPooled(b *testing.B) {
	run := func(b *testing.B, addr string) {
		f := newBenchFixture(b, addr)
		msg := &Message{ID: "B", From: "a@src.test", Rcpts: []string{"b@example.test"},
			Data: &smtp.Message{Header: []byte("Subject: bench\r\n\r\nhello\r\n.dot\r\n")}}
		b.ReportAllocs()
		b.SetParallelism(4)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if r := f.Deliver(context.Background(), msg); !r[0].Delivered {
					b.Errorf("not delivered: %+v", r[0])
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	}
	b.Run("fake", func(b *testing.B) {
		s := newFake(b, "127.0.0.8", func(s *fakeServer) { s.Ext = []string{"PIPELINING", "8BITMIME"} })
		run(b, s.Addr)
	})
	b.Run("smtp-sink", func(b *testing.B) {
		addr, _ := startSink(b, "127.0.0.7")
		run(b, addr)
	})
}

// newBenchFixture returns a Deliverer for the server at addr, quiet.
func newBenchFixture(b *testing.B, addr string) *Deliverer {
	dl := &mapDialer{m: map[string]string{}}
	h := mx("mx.example.test", policy.Opportunistic, &fakeServer{Addr: addr})
	dl.m[h.Addrs[0].String()+":25"] = addr
	d := &Deliverer{
		Hostname: "out.postern.test",
		Planner:  fixedPlanner{plan: &policy.Plan{Hosts: []policy.Host{h}}},
		Dialer:   dl,
		Pool:     PoolOptions{MaxIdlePerHost: 10, MaxMessagesPerConn: 1000},
		Logger:   slog.New(slog.DiscardHandler),
	}
	b.Cleanup(d.Close)
	return d
}

// BenchmarkMeets measures the check a pooled session gets each time it
// is taken for a message (Deliverer.meets): a WebPKI chain (an ECDSA
// leaf and its root) for the MX name of a "verify" domain, and a DANE-EE
// SHA-256 TLSA record.
func BenchmarkMeets(b *testing.B) {
	ca := testcert.NewCA()
	cert := ca.Issue(testcert.Spec{DNSNames: []string{"mx.shared.test"}})
	dns := dnstest.New(b, sharedMX("127.0.0.2", tlsaEE(cert)))
	signDANE(dns)
	eng := policy.New(policy.Options{Resolver: dns.Resolver(), Roots: ca.Pool,
		Minimum: map[string]policy.Mode{"plain.test": policy.Verify}})
	// A real handshake for the connection state.
	cn, sn := net.Pipe()
	go tls.Server(sn, serverTLS(cert)).Handshake()
	tc := tls.Client(cn, &tls.Config{InsecureSkipVerify: true, ServerName: "mx.shared.test"})
	if err := tc.Handshake(); err != nil {
		b.Fatal(err)
	}
	defer tc.Close()
	d := &Deliverer{}
	for _, domain := range []string{"plain.test", "dane.test"} {
		plan, err := eng.Plan(context.Background(), policy.Request{Domain: domain})
		if err != nil {
			b.Fatal(err)
		}
		tg := &target{host: plan.Hosts[0]}
		c := newConn(tc, Timeouts{}) // its TLS state, from the handshake
		c.key = poolKey{host: "mx.shared.test", addr: "127.0.0.2:25"}
		b.Run(string(tg.host.Source), func(b *testing.B) {
			for b.Loop() {
				if f := d.meets(tg, c); f != nil {
					b.Fatal(f.err)
				}
			}
		})
	}
}
