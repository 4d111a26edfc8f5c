package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"postern/internal/testkit"
)

// deltaChatRPCServer is where scripts/test installs Delta Chat's core, the
// npm package @deltachat/stdio-rpc-server (its prebuilt binary), under the
// repository.
const deltaChatRPCServer = "../.tools/deltachat/node_modules/@deltachat/stdio-rpc-server-linux-x64/deltachat-rpc-server"

// TestAutoconfigDeltaChat has a second real client, Delta Chat's core
// (deltachat-rpc-server, Rust), configure gina@example.test against the
// real binary: its configure step fetches Mozilla's file, or, when that
// is not there, Microsoft's Autodiscover, and logs the servers it then
// tries. The IMAP and SMTP connections that follow fail (the proxy
// refuses them), which is fine: the log names what was found.
//
// Delta Chat verifies HTTPS against the roots built into it (rustls with
// webpki-roots), so a test CA cannot be trusted: the account asks it to
// accept invalid certificates, under which it fetches the same URLs
// (certificate trust is what TestAutoconfigThunderbird covers).
func TestAutoconfigDeltaChat(t *testing.T) {
	integration(t)
	bin, err := filepath.Abs(deltaChatRPCServer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("POSTERN_INTEGRATION") != "" {
			t.Fatalf("Delta Chat's core is required (scripts/test installs it with npm): %v", err)
		}
		t.Skipf("Delta Chat's core not installed: %v", err)
	}
	_, acAddr, _ := startAutoconfig(t, true)
	for _, c := range []struct {
		name   string
		refuse []string // hosts the proxy refuses
		asked  string   // the URL Delta Chat fetches the settings from
		found  string   // what it then tries, from its log
	}{
		{"Mozilla autoconfig", nil, "https://autoconfig.example.test/mail/config-v1.1.xml?emailaddress=gina%40example.test",
			"Used params: ***@example.test imap:[imap.example.test:993:tls] smtp:[localhost:465:tls, localhost:587:starttls]"},
		// Delta Chat GETs Autodiscover without an address, and reads no
		// TLS mode from the answer: it tries both on each port.
		{"Microsoft Autodiscover", []string{"autoconfig.example.test", "example.test"}, "https://autodiscover.example.test/autodiscover/autodiscover.xml",
			"Used params: ***@example.test imap:[imap.example.test:993:tls, imap.example.test:993:starttls] " +
				"smtp:[localhost:465:tls, localhost:465:starttls, localhost:587:tls, localhost:587:starttls]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			proxy := startConnectProxy(t, acAddr)
			proxy.refuse = map[string]bool{}
			for _, h := range c.refuse {
				proxy.refuse[h] = true
			}
			log := deltaChatConfigure(t, bin, proxy.addr)
			if !strings.Contains(log, c.found) {
				t.Errorf("Delta Chat did not use the served settings (%s):\n%s", c.found, log)
			}
			if !strings.Contains(log, `Fetching "`+c.asked+`"`) {
				t.Errorf("Delta Chat did not fetch %s:\n%s", c.asked, log)
			}
			host := strings.SplitN(strings.TrimPrefix(c.asked, "https://"), "/", 2)[0] + ":443"
			if !slices.Contains(proxy.targets(), host) {
				t.Errorf("Delta Chat did not connect to %s: %v", host, proxy.targets())
			}
		})
	}
}

// deltaChatConfigure runs Delta Chat's core over JSON-RPC (one request
// or response a line on its standard input and output), makes a new
// account for gina@example.test whose connections go through proxy, has
// it configure, and returns the messages of the events it sent until the
// configure call returned.
func deltaChatConfigure(t *testing.T, bin, proxy string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "DC_ACCOUNTS_PATH="+filepath.Join(dir, "accounts"), "RUST_LOG=warn")
	var stderr testkit.SyncBuffer
	cmd.Stderr = &stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	timer := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	r := &jsonRPC{w: stdin, r: bufio.NewReader(stdout)}
	call := func(method string, params ...any) json.RawMessage {
		t.Helper()
		id := r.send(t, method, params...)
		for {
			got, res, rpcErr := r.recv(t, stderr.String)
			if got == id {
				if rpcErr != nil {
					t.Fatalf("%s: %s", method, rpcErr)
				}
				return res
			}
		}
	}
	acc := call("add_account")
	call("set_config", acc, "proxy_url", "http://"+proxy)
	call("set_config", acc, "proxy_enabled", "1")
	// The call's answer (an error: IMAP fails) may come before the last
	// events; the end is the ConfigureProgress event of 0 (failed) or
	// 1000 (done).
	r.send(t, "add_or_update_transport", acc, map[string]string{
		"addr": "gina@example.test", "password": "secret", "certificateChecks": "acceptInvalidCertificates"})
	var msgs []string
	for {
		ev := r.send(t, "get_next_event")
		id, res, _ := r.recv(t, stderr.String)
		for id != ev {
			id, res, _ = r.recv(t, stderr.String)
		}
		var e struct {
			Event struct {
				Kind, Msg, Comment string
				Progress           *int
			}
		}
		json.Unmarshal(res, &e)
		if e.Event.Msg != "" {
			msgs = append(msgs, e.Event.Kind+": "+e.Event.Msg)
		}
		if e.Event.Kind == "ConfigureProgress" && e.Event.Progress != nil && (*e.Event.Progress == 0 || *e.Event.Progress == 1000) {
			return strings.Join(append(msgs, fmt.Sprintf("%s: %d %s", e.Event.Kind, *e.Event.Progress, e.Event.Comment)), "\n")
		}
	}
}

// jsonRPC is a JSON-RPC 2.0 client over a line-oriented stream.
type jsonRPC struct {
	w  io.Writer
	r  *bufio.Reader
	id int
}

func (c *jsonRPC) send(t *testing.T, method string, params ...any) int {
	t.Helper()
	c.id++
	if params == nil {
		params = []any{}
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": c.id, "method": method, "params": params})
	if _, err := fmt.Fprintf(c.w, "%s\n", b); err != nil {
		t.Fatalf("json-rpc %s: %v", method, err)
	}
	return c.id
}

// recv reads one response: its id, result and error (nil when none);
// logs gives the peer's log for a failure.
func (c *jsonRPC) recv(t *testing.T, logs func() string) (int, json.RawMessage, json.RawMessage) {
	t.Helper()
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("json-rpc: %v\n%s", err, logs())
	}
	var resp struct {
		ID     int
		Result json.RawMessage
		Error  json.RawMessage
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		t.Fatalf("json-rpc: %v: %s", err, line)
	}
	return resp.ID, resp.Result, resp.Error
}
