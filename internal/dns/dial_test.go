package dns_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"postern/internal/dns"
	"postern/internal/dns/dnstest"
)

// recordingDialer records the addresses dialed and refuses those in
// refuse; others it dials for real.
type recordingDialer struct {
	mu     sync.Mutex
	dialed []string
	refuse map[string]bool
}

func (d *recordingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, addr)
	refused := d.refuse[addr]
	d.mu.Unlock()
	if refused {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("refused by the test")}
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func TestDialerResolvesThroughResolver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	// Only this DNS server knows the names.
	srv := dnstest.New(t, dnstest.Zone{
		"two.dial.test":  {dnstest.A("127.0.0.2"), dnstest.A("127.0.0.1")},
		"four.dial.test": {dnstest.A("127.0.0.1")},
	})
	rec := &recordingDialer{refuse: map[string]bool{"127.0.0.2:" + port: true}}
	d := &dns.Dialer{Resolver: srv.Resolver(), Dialer: rec}
	ctx := context.Background()

	// The first address refuses; the second is tried and connects.
	c, err := d.DialContext(ctx, "tcp", "two.dial.test:"+port)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close()
	if got := strings.Join(rec.dialed, " "); got != "127.0.0.2:"+port+" 127.0.0.1:"+port {
		t.Errorf("dialed %q, want both addresses in order", got)
	}

	// An address is dialed as it is, without a query.
	q := srv.Queries()
	rec.dialed = nil
	if c, err := d.DialContext(ctx, "tcp", "127.0.0.1:"+port); err != nil {
		t.Errorf("dial an address: %v", err)
	} else {
		c.Close()
	}
	if srv.Queries() != q || len(rec.dialed) != 1 {
		t.Errorf("queries %d, dialed %q", srv.Queries()-q, rec.dialed)
	}

	// A name the DNS does not know is not looked up anywhere else.
	rec.dialed = nil
	_, err = d.DialContext(ctx, "tcp", "localhost:"+port)
	if !errors.Is(err, dns.ErrNXDomain) || len(rec.dialed) != 0 {
		t.Errorf("localhost: %v, dialed %q; want NXDOMAIN from the configured DNS", err, rec.dialed)
	}
	// No address of the family asked.
	if _, err := d.DialContext(ctx, "tcp6", "four.dial.test:"+port); err == nil || len(rec.dialed) != 0 {
		t.Errorf("tcp6 to an IPv4-only name: %v, dialed %q", err, rec.dialed)
	}
	// Every address refuses: each error is returned.
	rec.refuse["127.0.0.1:"+port] = true
	_, err = d.DialContext(ctx, "tcp", "two.dial.test:"+port)
	if err == nil || strings.Count(err.Error(), "refused by the test") != 2 {
		t.Errorf("all refused: %v", err)
	}
	if _, err := d.DialContext(ctx, "tcp", "no-port"); err == nil {
		t.Error("an address without a port dialed")
	}
}
