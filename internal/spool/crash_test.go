package spool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"postern/internal/smtp"
	"postern/internal/spool/spooltest"
)

const helperEnv = "POSTERN_QUEUE_CRASH_HELPER_DIR"

// TestHelperProcess is not a test: run by TestCrashSafety as a child
// process, it Puts messages from 8 goroutines, and streams large ones
// into blobs (as a session does) from 2 more, forever, and prints the id
// of each acknowledged one, until it is killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := Open(Options{Dir: dir, SegmentSize: 256 << 10, Logger: quietLogger()})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := os.Stdout
	var wg sync.WaitGroup
	for g := range crashGoroutines {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("c%s%02d%016d", os.Getenv(helperEnv+"_ROUND"), g, i)
				if err := crashPut(s, id, g, i); err != nil {
					fmt.Fprintln(out, "put:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintln(out, id) // unbuffered: one write per ack
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// crashGoroutines is how many goroutines the helper puts from; the last
// crashLarge of them put large messages, streamed into blobs.
const (
	crashGoroutines = 10
	crashLarge      = 2
)

// crashSize is the size of message i of goroutine g in the crash test.
func crashSize(g, i int) int {
	if g >= crashGoroutines-crashLarge {
		return InlineMax + (i*7919)%(2<<20)
	}
	return 200 + (i*997)%20000
}

// crashPut stores message i of goroutine g: small ones with Put, large
// ones streamed into a Blob as a session does, then PutMessage.
func crashPut(s *Spool, id string, g, i int) error {
	data := spooltest.Data(id, crashSize(g, i))
	env := spooltest.Env(id, "a@x", "b@y")
	if g < crashGoroutines-crashLarge {
		return s.Put(context.Background(), env, data)
	}
	b, err := s.createBlob(id)
	if err != nil {
		return err
	}
	defer b.Close()
	for p := data; len(p) > 0; p = p[min(len(p), 8192):] {
		if _, err := b.Write(p[:min(len(p), 8192)]); err != nil {
			return err
		}
	}
	end := smtp.HeaderEnd(data)
	return s.PutMessage(context.Background(), env, &smtp.Message{Header: data[:end],
		Body: smtp.BodyFile(b, int64(end), int64(len(data)-end))})
}

func TestCrashSafety(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for round := range 3 {
		acked := crashChild(t, dir, round, 100+round*50)
		s := openTest(t, dir, 256<<10)
		large := 0
		for _, id := range acked {
			var g, i int
			fmt.Sscanf(id[2:4], "%d", &g)
			fmt.Sscanf(id[4:], "%d", &i)
			env, data, err := s.Get(id)
			if err != nil {
				t.Fatalf("round %d: acknowledged message %s lost: %v", round, id, err)
			}
			if env.ID != id || len(env.Recipients) != 2 || !bytes.Equal(data, spooltest.Data(id, crashSize(g, i))) {
				t.Fatalf("round %d: acknowledged message %s damaged", round, id)
			}
			if g >= crashGoroutines-crashLarge {
				large++
			}
		}
		// Every blob left is the body of a message in the spool: none of
		// the messages in flight at the kill left a file behind.
		live := map[string]bool{}
		for _, it := range s.List() {
			live[it.ID] = true
		}
		for _, name := range blobNames(t, dir) {
			if !live[name] {
				t.Errorf("round %d: blob %s of no message left behind", round, name)
			}
		}
		if large == 0 {
			t.Errorf("round %d: no large message acknowledged", round)
		}
		t.Logf("round %d: %d acknowledged messages intact (%d large), %d in spool, %d blobs",
			round, len(acked), large, len(s.List()), len(blobNames(t, dir)))
		s.Close()
	}
}

// crashChild runs the helper in dir, SIGKILLs it after n acknowledgements
// and returns the acknowledged ids.
func crashChild(t *testing.T, dir string, round, n int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir, fmt.Sprintf("%s_ROUND=%d", helperEnv, round))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var acked []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if len(line) != 20 || !strings.HasPrefix(line, "c") {
			t.Fatalf("helper: %s", line)
		}
		acked = append(acked, line)
		if len(acked) == n {
			cmd.Process.Signal(syscall.SIGKILL) // mid-stream: Puts are in flight
			break
		}
	}
	// Whatever the child printed before it died was acknowledged too.
	for sc.Scan() {
		if line := sc.Text(); len(line) == 20 {
			acked = append(acked, line)
		}
	}
	cmd.Wait()
	if len(acked) < n {
		t.Fatalf("helper died after %d acks", len(acked))
	}
	return acked
}
