// Command benchdns is a tiny authoritative-style DNS server for benchmarks
// and manual tests on loopback: it answers, over UDP and TCP on one
// address, from the records given on the command line, as a recursive
// resolver would for a zone it knows completely (NXDOMAIN for names it
// has no record for, NODATA for other types of a known name). It lets the
// real postern binary route mail by MX to a peer on a loopback address
// ([dns] servers = ["ADDR"]) without touching the machine's resolver.
//
//	benchdns -listen 127.0.0.1:13653 \
//	    -rr 'example.net. 60 IN MX 10 mx.example.net.' \
//	    -rr 'mx.example.net. 60 IN A 127.0.0.80'
//
// It runs until killed. Tests use internal/dns/dnstest instead, which can
// also fail on purpose.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	mdns "github.com/miekg/dns"
)

// rrFlags collects repeated -rr flags.
type rrFlags []mdns.RR

func (f *rrFlags) String() string { return fmt.Sprint(len(*f), " records") }

func (f *rrFlags) Set(s string) error {
	rr, err := mdns.NewRR(s)
	if err != nil {
		return err
	}
	if rr == nil {
		return fmt.Errorf("no record in %q", s)
	}
	*f = append(*f, rr)
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:5353", "UDP and TCP address to answer on")
	var rrs rrFlags
	flag.Var(&rrs, "rr", "a record in zone-file syntax (repeatable)")
	flag.Parse()
	if len(rrs) == 0 {
		fmt.Fprintln(os.Stderr, "benchdns: no -rr given")
		os.Exit(2)
	}
	zone := make(map[string][]mdns.RR)
	for _, rr := range rrs {
		name := strings.ToLower(rr.Header().Name)
		zone[name] = append(zone[name], rr)
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(req)
		m.RecursionAvailable = true
		if len(req.Question) != 1 {
			m.Rcode = mdns.RcodeFormatError
			w.WriteMsg(m)
			return
		}
		q := req.Question[0]
		have, ok := zone[strings.ToLower(q.Name)]
		if !ok {
			m.Rcode = mdns.RcodeNameError
		}
		for _, rr := range have {
			if rr.Header().Rrtype == q.Qtype || q.Qtype == mdns.TypeANY {
				m.Answer = append(m.Answer, mdns.Copy(rr))
			}
		}
		w.WriteMsg(m)
	})
	errc := make(chan error, 2)
	for _, network := range []string{"udp", "tcp"} {
		srv := &mdns.Server{Addr: *listen, Net: network, Handler: h}
		go func() { errc <- srv.ListenAndServe() }()
	}
	fmt.Fprintf(os.Stderr, "benchdns: answering on %s (udp, tcp) with %d records\n", *listen, len(rrs))
	fmt.Fprintln(os.Stderr, "benchdns:", <-errc)
	os.Exit(1)
}
