package queue

import (
	"bufio"
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
	"postern/internal/spool"
	"postern/internal/spool/spooltest"
	"postern/internal/testkit"
)

const runnerHelperEnv = "POSTERN_QUEUE_RUNNER_HELPER"

// deliveryLog appends "id rcpt" lines to a file, one write each, so
// that a line is there as soon as the delivery "happened", even if the
// process is killed right after.
type deliveryLog struct {
	mu sync.Mutex
	f  *os.File
}

func openDeliveryLog(t testing.TB, path string) *deliveryLog {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return &deliveryLog{f: f}
}

func (l *deliveryLog) add(id, rcpt string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.f, "%s %s\n", id, rcpt)
}

// deliverers returns a remote BatchDeliverer and a local Deliverer that
// log every delivery after waiting delay.
func (l *deliveryLog) deliverers(delay time.Duration) (BatchDeliverer, Deliverer) {
	remote := BatchDelivererFunc(func(ctx context.Context, env *smtp.Envelope, rcpts []string, msg *smtp.Message) []Outcome {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil
		}
		out := make([]Outcome, len(rcpts))
		for i, r := range rcpts {
			l.add(env.ID, r) // the remote server said 250
			out[i] = Outcome{Rcpt: r}
		}
		return out
	})
	local := DelivererFunc(func(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error {
		time.Sleep(delay / 4)
		l.add(env.ID, rcpt)
		return nil
	})
	return remote, local
}

// TestRunnerHelperProcess is not a test: run by TestRunnerRestartSafety
// as a child process, it runs a Runner with slow deliverers on the spool
// in $POSTERN_QUEUE_RUNNER_HELPER until it is killed.
func TestRunnerHelperProcess(t *testing.T) {
	dir := os.Getenv(runnerHelperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := spool.Open(spool.Options{Dir: dir + "/spool", Logger: quietLogger()})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	remote, local := openDeliveryLog(t, dir+"/deliveries").deliverers(15 * time.Millisecond)
	r := NewRunner(s, RunnerOptions{RemoteBatch: remote, Local: local, IsLocal: isLocal,
		Workers: 2, RemoteConcurrency: 3, Logger: quietLogger(), Policy: fastPolicy})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fmt.Println("running")
	r.Run(ctx) // until SIGKILL; the timeout only guards against a lost parent
	os.Exit(3)
}

// SIGKILL during delivery loses nothing: after a restart every recipient
// of every message is delivered, some possibly twice, none never.
func TestRunnerRestartSafety(t *testing.T) {
	dir := t.TempDir()
	s, err := spool.Open(spool.Options{Dir: dir + "/spool", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := range 40 {
		id := spooltest.ID()
		rcpts := []string{fmt.Sprintf("a%d@one.example", i), fmt.Sprintf("b%d@two.example", i), fmt.Sprintf("c%d@local.test", i)}
		if i%3 == 0 {
			rcpts = append(rcpts, fmt.Sprintf("d%d@one.example", i))
		}
		for _, r := range rcpts {
			want[id+" "+r] = true
		}
		mustPut(t, s, spooltest.Env(id, rcpts...), spooltest.Data(id, 1000))
	}
	s.Close()

	logPath := dir + "/deliveries"
	for round, after := range []int{15, 40} {
		killAfter(t, dir, logPath, after)
		t.Logf("round %d: killed after %d deliveries", round, countLines(t, logPath))
	}

	// The restart: run until the queue is empty.
	s, err = spool.Open(spool.Options{Dir: dir + "/spool", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	remote, local := openDeliveryLog(t, logPath).deliverers(0)
	_, stop := runFor(t, s, RunnerOptions{RemoteBatch: remote, Local: local, Policy: fastPolicy})
	testkit.WaitFor(t, "queue empty", func() bool { return len(s.List()) == 0 })
	stop()

	got := map[string]int{}
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		got[sc.Text()]++
	}
	twice := 0
	for k := range want {
		switch n := got[k]; {
		case n == 0:
			t.Errorf("never delivered: %s", k)
		case n > 3: // once per run at most: two killed runs and the last
			t.Errorf("delivered %d times: %s", n, k)
		case n > 1:
			twice++
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("unexpected delivery %q", k)
		}
	}
	t.Logf("%d deliveries, %d delivered more than once", len(want), twice)
}

// killAfter runs the helper on dir and SIGKILLs it once the delivery log
// has at least n lines.
func killAfter(t *testing.T, dir, logPath string, n int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunnerHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), runnerHelperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "running" {
		t.Fatalf("helper: %q", line)
	}
	deadline := time.Now().Add(10 * time.Second)
	for countLines(t, logPath) < n {
		if time.Now().After(deadline) {
			t.Fatalf("helper delivered only %d of %d", countLines(t, logPath), n)
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL) // deliveries are in flight
}

func countLines(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}
