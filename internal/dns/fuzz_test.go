package dns

import (
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

// FuzzJoinTXT checks that joinTXT undoes miekg/dns's escaping of TXT
// character-strings: the octets on the wire come back exactly.
func FuzzJoinTXT(f *testing.F) {
	f.Add([]byte("v=spf1 -all"), 3)
	f.Add([]byte(`\"\\\065 ;()`), 1)
	f.Add([]byte("\x00\x01\x7f\x80\xff"), 0)
	f.Add([]byte(strings.Repeat("ab", 300)), 255)
	f.Fuzz(func(t *testing.T, raw []byte, cut int) {
		// Split raw into character-strings of at most 255 octets, the
		// first cut long.
		var rdata []byte
		rest := raw
		for first := true; len(rest) > 0 || first; first = false {
			n := min(len(rest), 255)
			if first && cut >= 0 && cut < n {
				n = cut
			}
			rdata = append(rdata, byte(n))
			rdata = append(rdata, rest[:n]...)
			rest = rest[n:]
		}
		if len(rdata) > 65535 {
			return
		}
		hdr := mdns.RR_Header{Name: "x.", Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Rdlength: uint16(len(rdata))}
		rr, _, err := mdns.UnpackRRWithHeader(hdr, rdata, 0)
		if err != nil {
			t.Fatalf("unpack %q: %v", rdata, err)
		}
		if got := joinTXT(rr.(*mdns.TXT).Txt); got != string(raw) {
			t.Fatalf("joinTXT(%q) = %q, want %q", rr.(*mdns.TXT).Txt, got, raw)
		}
	})
}

// FuzzNormalizeName checks that normalizeName never panics and that what
// it accepts is a lower-case, fully qualified name miekg/dns can pack,
// which normalizes to itself.
func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"example.com", "Example.COM.", ".", "", "a..b", `a\.b.example`, "_25._tcp.mx.example", strings.Repeat("a.", 130), "xn--bcher-kva.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		fq, err := normalizeName(name)
		if err != nil {
			return
		}
		if !strings.HasSuffix(fq, ".") || strings.ToLower(fq) != fq {
			t.Fatalf("normalizeName(%q) = %q, not lower case and fully qualified", name, fq)
		}
		if again, err := normalizeName(fq); err != nil || again != fq {
			t.Fatalf("normalizeName(%q) = %q, %v; want it unchanged", fq, again, err)
		}
		m := new(mdns.Msg)
		m.SetQuestion(fq, mdns.TypeMX)
		if _, err := m.Pack(); err != nil {
			t.Fatalf("normalizeName(%q) = %q, which does not pack: %v", name, fq, err)
		}
		if h := hostName(fq); strings.HasSuffix(h, ".") && h != "" {
			t.Fatalf("hostName(%q) = %q ends with a dot", fq, h)
		}
	})
}
