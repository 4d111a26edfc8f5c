package proxyproto

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzReadHeader feeds the parser arbitrary input: it must not panic or
// read past its limits, and a header it accepts must survive being
// written again and read back.
func FuzzReadHeader(f *testing.F) {
	f.Add(AppendV1(nil, src4, dst4))
	f.Add(AppendV1(nil, src6, dst6))
	f.Add(AppendV2(nil, src4, dst4, false))
	f.Add(AppendV2(nil, src6, dst6, false))
	f.Add(AppendV2(nil, src4, dst4, true))
	f.Add(v2WithTLV())
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("EHLO x\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		h, err := ReadHeader(r)
		if err != nil {
			return
		}
		used := len(in) - r.Buffered()
		if h.Version == 1 && used > v1Max {
			t.Fatalf("version 1 header of %d bytes accepted", used)
		}
		if h.Version == 2 && used > 16+v2MaxLen {
			t.Fatalf("version 2 header of %d bytes accepted", used)
		}
		if h.Local {
			return
		}
		var again []byte
		if h.Version == 1 {
			again = AppendV1(nil, h.Source, h.Destination)
		} else {
			again = AppendV2(nil, h.Source, h.Destination, false)
		}
		h2, err := ReadHeader(bufio.NewReader(bytes.NewReader(again)))
		if err != nil || h2 != h {
			t.Fatalf("%+v written as %q reads back as %+v, %v", h, again, h2, err)
		}
	})
}
