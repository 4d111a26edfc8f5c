package test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size at a new directory and unmounts it
// when the test ends. Without the right to mount (not root, no
// CAP_SYS_ADMIN) the test is skipped, or fails under
// POSTERN_INTEGRATION=1, where scripts/test runs as root.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "postern-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		os.Remove(dir)
		if os.Getenv("POSTERN_INTEGRATION") != "" {
			t.Fatalf("mount a tmpfs (scripts/test runs as root): %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			return
		}
		os.Remove(dir)
	})
	return dir
}

// mxSend sends one message over a plain mx session and returns the
// final reply line.
func mxSend(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	var last string
	for _, cmd := range []string{"", "EHLO client.test", "MAIL FROM:<x@sender.test>", "RCPT TO:<bob@example.test>", "DATA", msg + "."} {
		if cmd != "" {
			fmt.Fprintf(c, "%s\r\n", cmd)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("after %.40q: %v", cmd, err)
			}
			last = strings.TrimSpace(l)
			if len(l) < 4 || l[3] == ' ' {
				break
			}
		}
		if cmd == "DATA" && !strings.HasPrefix(last, "354") {
			return last
		}
	}
	fmt.Fprintf(c, "QUIT\r\n")
	return last
}

// On a full disk the spool answers 452 4.3.1 (RFC 3463: insufficient
// system storage), not 451 4.3.0, for small messages and for large ones
// streamed to disk; every message acknowledged before is kept, through a
// kill -9 and a restart on the full disk, and delivered once there is
// room again (issue 12 §8). The data directory is on a tmpfs of 4 MiB
// that the test fills.
func TestDiskFull(t *testing.T) {
	integration(t)
	mnt := mountTmpfs(t, "4m")
	s := testConfig(t, mnt, `
[log]
level = "warn"

[delivery]
retry_first = "1s"
retry_max = "2s"
`)
	if out, err := s.run("secret-pw-1\n", "user", "add", "bob@example.test"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	s.start()
	// A filler takes room the test gives back at the end.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}

	body := func(i, size int) string {
		line := fmt.Sprintf("message %03d %s\r\n", i, strings.Repeat("z", 60))
		return fmt.Sprintf("From: <x@sender.test>\r\nSubject: full %03d\r\n\r\n", i) + strings.Repeat(line, size/len(line))
	}
	var acked []int
	full := 0
	for i := 0; i < 200 && full < 4; i++ {
		size := 40 << 10
		if i%3 == 2 {
			size = 300 << 10 // streamed to a blob
		}
		switch r := mxSend(t, s.mx, body(i, size)); {
		case strings.HasPrefix(r, "250 "):
			acked = append(acked, i)
		case strings.HasPrefix(r, "452 4.3.1"):
			full++
		default:
			t.Fatalf("message %d: %q, want 250 or 452 4.3.1", i, r)
		}
	}
	if full == 0 || len(acked) == 0 {
		t.Fatalf("%d acknowledged, %d refused for want of space: the disk never filled", len(acked), full)
	}
	t.Logf("%d messages acknowledged before the disk was full, then %d refused with 452 4.3.1", len(acked), full)

	// A crash while the disk is full, a start on the full disk, then
	// room again: delivery resumes in the running server.
	if err := s.signal(syscall.SIGKILL); err == nil {
		t.Fatal("postern survived SIGKILL")
	}
	// What room the last refusals left (a 40 KiB message may still fit
	// where a 300 KiB one did not) is taken too.
	filler2, filler3 := filepath.Join(mnt, "filler2"), filepath.Join(mnt, "filler3")
	fillUp(t, filler2)
	s.start()
	// Recovery removed the segments that failed appends left with only
	// a torn record in them: that room is taken as well.
	fillUp(t, filler3)
	if r := mxSend(t, s.mx, body(999, 40<<10)); !strings.HasPrefix(r, "452 4.3.1") {
		t.Errorf("on the full disk after the restart: %q, want 452 4.3.1", r)
	}
	for _, f := range []string{filler, filler2, filler3} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		missing := 0
		have := strings.Join(s.maildirNew("bob@example.test"), "")
		for _, i := range acked {
			if !strings.Contains(have, fmt.Sprintf("Subject: full %03d\r\n", i)) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages not delivered after the disk had room again", missing, len(acked))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Delivered whole.
	for _, m := range s.maildirNew("bob@example.test") {
		var i int
		if _, err := fmt.Sscanf(m[strings.Index(m, "Subject: full ")+len("Subject: full "):], "%03d", &i); err != nil {
			t.Fatalf("unexpected message:\n%.200s", m)
		}
		if !strings.HasSuffix(m, body(i, 40<<10)) && !strings.HasSuffix(m, body(i, 300<<10)) {
			t.Errorf("message %d damaged (%d bytes)", i, len(m))
		}
	}
}

// fillUp writes zeros to a new file at path until the file system is
// full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zeros := make([]byte, 4096)
	for {
		if _, err := f.Write(zeros); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}
