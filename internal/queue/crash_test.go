package queue

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
)

const helperEnv = "POSTERN_QUEUE_CRASH_HELPER_DIR"

// TestHelperProcess is not a test: run by TestCrashSafety as a child
// process, it Puts messages from 8 goroutines forever and prints the id of
// each acknowledged one, until it is killed.
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
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("c%s%02d%016d", os.Getenv(helperEnv+"_ROUND"), g, i)
				if err := s.Put(context.Background(), testEnv(id, "a@x", "b@y"), testData(id, 200+(i*997)%20000)); err != nil {
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

func TestCrashSafety(t *testing.T) {
	dir := t.TempDir()
	for round := range 3 {
		acked := crashChild(t, dir, round, 100+round*50)
		s := openTest(t, dir, 256<<10)
		for _, id := range acked {
			var i int
			fmt.Sscanf(id[4:], "%d", &i)
			env, data, err := s.Get(id)
			if err != nil {
				t.Fatalf("round %d: acknowledged message %s lost: %v", round, id, err)
			}
			if env.ID != id || len(env.Recipients) != 2 || !bytes.Equal(data, testData(id, 200+(i*997)%20000)) {
				t.Fatalf("round %d: acknowledged message %s damaged", round, id)
			}
		}
		t.Logf("round %d: %d acknowledged messages intact, %d in spool", round, len(acked), len(s.List()))
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
