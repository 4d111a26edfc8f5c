package test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"postern/internal/admin"
)

// TestQueueIncident is the incident runbook of docs/operations.md run
// against the real binary and a live server: mail to a domain that is
// down is found with a filter, held (refused without a terminal or
// --yes, asked on a terminal), kept held across a restart, released,
// read with cat (on a terminal, its escape sequences shown, not obeyed), deleted by id (one id gone meanwhile) and by --all;
// hostile ids and a filter that matches nothing get their exit status;
// without the server the commands say so.
func TestQueueIncident(t *testing.T) {
	integration(t)
	scriptTool := needTool(t, "script")
	s := testConfig(t, t.TempDir(), "")
	s.dns.ServFail("down.example", "other.example")
	s.start()
	s.addUser("alice@example.test", "alice-secret-1")
	c := mustDial(t, s.sub, "alice@example.test", "alice-secret-1")
	for i := range 6 {
		body := fmt.Sprintf("From: alice@example.test\r\nSubject: m%d\r\n\r\nbody of m%d\r\n", i, i)
		if err := send(c, "alice@example.test", fmt.Sprintf("u%d@down.example", i), body); err != nil {
			t.Fatal(err)
		}
	}
	if err := sendTo(c, "alice@example.test", []string{"a@down.example", "b@other.example"},
		"From: alice@example.test\r\nSubject: both\r\n\r\nto two domains\x1b[2J\r\n"); err != nil {
		t.Fatal(err)
	}
	c.Quit()

	// queue runs `postern queue ARGS` on this server with stdin empty
	// (not a terminal).
	queue := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		return command(t, t.TempDir(), nil, "", append(append([]string{"queue"}, args...), s.args()...)...)
	}
	list := func(args ...string) []admin.Message {
		t.Helper()
		out, errs, code := queue(append([]string{"list", "--json"}, args...)...)
		var msgs []admin.Message
		if code != 0 || json.Unmarshal([]byte(out), &msgs) != nil {
			t.Fatalf("queue list --json %q: exit %d\n%s%s", args, code, out, errs)
		}
		return msgs
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(list("--state", "deferred")) != 7 {
		if time.Now().After(deadline) {
			out, _, _ := queue("list")
			t.Fatalf("not 7 messages deferred:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Find all mail to the domain: each message with only its recipients there.
	msgs := list("--domain", "down.example")
	both := msgs[6].ID
	if len(msgs) != 7 || len(msgs[6].Recipients) != 1 || msgs[6].Recipients[0].Addr != "a@down.example" {
		t.Fatalf("list --domain down.example: %+v", msgs)
	}

	// Hold it: 7 messages, more than 5, so asked first.
	out, errs, code := queue("hold", "--domain", "down.example")
	if code != 1 || out != "" || !strings.Contains(errs, "7 messages (7 recipients) would be held") || !strings.Contains(errs, "--yes") {
		t.Fatalf("hold of 7 without a terminal: exit %d\n%s%s", code, out, errs)
	}
	if out, _, code := queue("list", "--state", "held"); code != 0 || out != "No message matches.\n" {
		t.Fatalf("a refused hold held: exit %d\n%s", code, out)
	}
	onTerminal := func(answer string, args ...string) (string, int) {
		t.Helper()
		line := binPath + " queue " + strings.Join(append(args, s.args()...), " ")
		cmd := exec.Command(scriptTool, "-qec", line, "/dev/null")
		cmd.Stdin = strings.NewReader(answer + "\n")
		return combinedStatus(t, cmd)
	}
	if out, code := onTerminal("n", "hold", "--domain", "down.example"); code != 1 ||
		!strings.Contains(out, "Hold 7 messages (7 recipients)? [y/N]") || !strings.Contains(out, "not confirmed: nothing changed") {
		t.Fatalf("hold answered no: exit %d\n%s", code, out)
	}
	if out, code := onTerminal("y", "hold", "--domain", "down.example"); code != 0 ||
		!strings.Contains(out, "Held 7 messages (7 recipients): nothing is tried until postern queue release.") {
		t.Fatalf("hold answered yes: exit %d\n%s", code, out)
	}

	// Held across a restart, by the operator; b@other.example is not.
	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v", err)
	}
	s.start()
	held := list("--state", "held")
	if len(held) != 7 || held[6].HoldReason != "held by operator" {
		t.Fatalf("held after a restart: %+v", held)
	}
	if m := list("--to", "b@other.example"); len(m) != 1 || m[0].Recipients[0].Status != "deferred" {
		t.Fatalf("b@other.example after the hold of down.example: %+v", m)
	}
	out, _, _ = queue("list", "--state", "held")
	if !regexp.MustCompile(`(?m)^` + both + ` .* a@down\.example \(held: held by operator\)$`).MatchString(out) {
		t.Errorf("queue list does not show the operator's hold:\n%s", out)
	}

	// Release it: delivered now, so tried again (and deferred again).
	if out, errs, code := queue("release", "--domain", "down.example", "--yes"); code != 0 ||
		out != "Released 7 messages (7 recipients): delivered now.\n" {
		t.Fatalf("release: exit %d\n%s%s", code, out, errs)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		m := list("--to", "a@down.example", "--state", "deferred")
		if len(m) == 1 && m[0].Recipients[0].Attempts >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a@down.example not tried after its release: %+v", m)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The whole message, as stored: the server's Received field on top.
	out, errs, code = queue("cat", both)
	if code != 0 || !strings.HasPrefix(out, "Received: ") || !strings.HasSuffix(out, "Subject: both\r\n\r\nto two domains\x1b[2J\r\n") {
		t.Errorf("cat: exit %d\n%q%s", code, out, errs)
	}
	// On a terminal, the message's escape sequence is shown, not obeyed.
	if out, code := onTerminal("", "cat", both); code != 0 || !strings.Contains(out, `to two domains\x1b[2J`) || strings.Contains(out, "\x1b") {
		t.Errorf("cat on a terminal: exit %d\n%q", code, out)
	}

	// Hostile input, and a filter that matches nothing.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"delete", "../queue/state.db"}, 64, `"../queue/state.db" is not a queue id`},
		{[]string{"cat", "x;rm"}, 64, `"x;rm" is not a queue id`},
		{[]string{"delete", "--to", "nobody@nowhere.example"}, 1, "nothing to delete: no undelivered recipient matches --to nobody@nowhere.example"},
		{[]string{"release", both}, 1, "message " + both + " is not held"},
		{[]string{"list", "--state", "stuck"}, 64, "want one of pending, deferred, held, active"},
	} {
		out, errs, code := queue(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, want %d and %q\n%s%s", c.args, code, c.code, c.want, out, errs)
		}
	}

	// Delete by id, one of them gone since it was listed.
	first := msgs[0].ID
	out, errs, code = queue("delete", first, "a0000000000000000000")
	if code != 0 || out != "Deleted 1 message (1 recipient): nothing more is delivered to them, and no bounce is sent.\n" ||
		!strings.Contains(errs, "a0000000000000000000: not in the queue") {
		t.Errorf("delete by id: exit %d\n%s%s", code, out, errs)
	}
	if _, errs, code := queue("delete", first); code != 1 || !strings.Contains(errs, "no message "+first+" in the queue") {
		t.Errorf("delete of a message deleted: exit %d\n%s", code, errs)
	}
	if out, errs, code := queue("flush"); code != 0 || out != "Retrying 6 messages (7 recipients) now.\n" {
		t.Errorf("flush: exit %d\n%s%s", code, out, errs)
	}
	if out, errs, code := queue("delete", "--all", "--yes"); code != 0 ||
		out != "Deleted 6 messages (7 recipients): nothing more is delivered to them, and no bounce is sent.\n" {
		t.Errorf("delete --all: exit %d\n%s%s", code, out, errs)
	}
	if out, _, code := queue("list"); code != 0 || out != "The queue is empty.\n" {
		t.Errorf("after delete --all: exit %d\n%s", code, out)
	}

	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := queue("hold", "--all", "--yes"); code != 1 || !strings.Contains(errs, "postern is not running") ||
		!strings.Contains(errs, "owns the spool") {
		t.Errorf("hold without a server: exit %d\n%s%s", code, out, errs)
	}
}
