package config

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// TestProxyAndScreen loads [proxy] and the listeners' proxy_protocol,
// greet_delay and dnsbl keys, and their defaults.
func TestProxyAndScreen(t *testing.T) {
	c := loadText(t, t.TempDir(), selfSigned+`[proxy]
trusted = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:198.51.100.1"]
[[listener]]
role = "mx"
address = ":25"
proxy_protocol = true
greet_delay = "3s"
dnsbl = [{zone = "Zen.Spamhaus.org.", weight = 2}, "bl.example.net"]
dnsbl_threshold = 2
[[listener]]
role = "submission"
address = ":587"
`)
	wantTrusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("198.51.100.1/32"),
	}
	if !reflect.DeepEqual(c.Proxy.Trusted, wantTrusted) {
		t.Errorf("Proxy.Trusted = %v", c.Proxy.Trusted)
	}
	want := ListenerScreen{
		ProxyProtocol: true, GreetDelay: 3 * time.Second, DNSBLThreshold: 2,
		DNSBL: []DNSBL{{Zone: "zen.spamhaus.org", Weight: 2}, {Zone: "bl.example.net", Weight: 1}},
	}
	if !reflect.DeepEqual(c.Listeners[0].ListenerScreen, want) {
		t.Errorf("mx ListenerScreen = %+v\nwant %+v", c.Listeners[0].ListenerScreen, want)
	}
	if got := c.Listeners[1].ListenerScreen; !reflect.DeepEqual(got, ListenerScreen{DNSBLThreshold: DefaultDNSBLThreshold}) {
		t.Errorf("submission ListenerScreen = %+v, want no screen (the default threshold)", got)
	}
}

func TestProxyAndScreenErrors(t *testing.T) {
	const mx = "[[listener]]\nrole = \"mx\"\naddress = \":25\"\n"
	const sub = "[[listener]]\nrole = \"submission\"\naddress = \":587\"\n"
	checkRefusals(t, selfSigned, []refusal{
		{"[proxy]\ntrusted = [\"10.0.0.0/33\"]", `proxy.trusted[0]: "10.0.0.0/33" is not an address or a CIDR prefix`},
		{"[proxy]\ntrusted = [\"lb.example\"]", `proxy.trusted[0]: "lb.example" is not an address or a CIDR prefix`},
		{"[proxy]\ntrusted = \"10.0.0.0/8\"", `proxy.trusted: expected an array of strings`},
		{"[proxy]\nhosts = []", `unknown key "proxy.hosts"`},
		{mx + "proxy_protocol = true", `listener[0].proxy_protocol: is true, but [proxy] trusted names no load balancer`},
		{mx + "proxy_protocol = \"yes\"", `listener[0].proxy_protocol: expected true or false`},
		{mx + "greet_delay = \"-1s\"", `listener[0].greet_delay: duration "-1s" must not be negative`},
		{mx + "greet_delay = \"2m\"", `listener[0].greet_delay: 2m0s is longer than 1m0s`},
		{sub + "greet_delay = \"3s\"", `listener[0].greet_delay: only on an mx listener`},
		{sub + "dnsbl = [\"zen.spamhaus.org\"]", `listener[0].dnsbl: only on an mx listener`},
		{mx + "dnsbl = [\"zen spamhaus\"]", `listener[0].dnsbl[0].zone: "zen spamhaus" is not a valid DNS name`},
		{mx + "dnsbl = [\"a.example\", {zone = \"A.example\"}]", `listener[0].dnsbl[1].zone: "a.example" is listed twice`},
		{mx + "dnsbl = [{weight = 2}]", `listener[0].dnsbl[0].zone: missing`},
		{mx + "dnsbl = [{zone = \"a.example\", weight = 0}]", `listener[0].dnsbl[0].weight: 0 is out of range`},
		{mx + "dnsbl = [{zone = \"a.example\", score = 1}]", `unknown key "listener.dnsbl.score"`},
		{mx + "dnsbl = \"a.example\"", `listener[0].dnsbl: expected an array`},
		{mx + "dnsbl = [5]", `listener[0].dnsbl[0]: expected a zone or a {zone, weight} table`},
		{mx + "dnsbl_threshold = 0", `listener[0].dnsbl_threshold: 0 is out of range`},
	})
}
