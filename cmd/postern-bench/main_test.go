package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
)

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "ssl", "-rcpt", "a@example.org"},
		{"-addr", "nohost", "-rcpt", "a@example.org"},
		{"-addr", "127.0.0.1:25"},
		{"-addr", "127.0.0.1:25", "-rcpt", "a@example.org", "-n", "0"},
		{"extra"},
	} {
		var out bytes.Buffer
		err := cmdBench(args, &out)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("bench %q: %v, want a usage error", args, err)
		}
	}
}

func TestVmRSS(t *testing.T) {
	kb, err := vmRSS(os.Getpid())
	if err != nil || kb <= 0 {
		t.Fatalf("vmRSS(self) = %d, %v", kb, err)
	}
	if _, err := vmRSS(-1); err == nil {
		t.Error("vmRSS(-1): no error")
	}
}

// TestBenchJSON runs postern bench against a tiny SMTP responder and
// checks the JSON line has the fields compare.sh reads.
func TestBenchJSON(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go fakeSMTP(c)
		}
	}()
	var out bytes.Buffer
	if err := cmdBench([]string{"-addr", l.Addr().String(), "-rcpt", "b@example.org", "-c", "2", "-n", "10", "-m", "3", "-s", "2000", "-json"}, &out); err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	for _, k := range []string{"messages", "errors", "per_second", "p50_ms", "p99_ms"} {
		if _, ok := r[k]; !ok {
			t.Errorf("no %q in %s", k, out.String())
		}
	}
	if r["messages"] != float64(10) || r["errors"] != float64(0) {
		t.Errorf("got %s", out.String())
	}
}

// fakeSMTP answers a plain SMTP client: enough for the load generator.
func fakeSMTP(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	c.Write([]byte("220 fake\r\n"))
	inData := false
	for {
		n, err := c.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
		for {
			if inData {
				i := bytes.Index(buf, []byte("\r\n.\r\n"))
				if i < 0 {
					break
				}
				buf = buf[i+5:]
				inData = false
				c.Write([]byte("250 ok\r\n"))
				continue
			}
			i := bytes.Index(buf, []byte("\r\n"))
			if i < 0 {
				break
			}
			line := strings.ToUpper(string(buf[:i]))
			buf = buf[i+2:]
			switch {
			case strings.HasPrefix(line, "EHLO"):
				c.Write([]byte("250-fake\r\n250 PIPELINING\r\n"))
			case line == "DATA":
				inData = true
				c.Write([]byte("354 go\r\n"))
			case line == "QUIT":
				c.Write([]byte("221 bye\r\n"))
				return
			default:
				c.Write([]byte("250 ok\r\n"))
			}
		}
	}
}
