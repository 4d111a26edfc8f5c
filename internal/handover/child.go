package handover

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Child is the new process's end of a graceful restart: the channel to
// the old process. Its methods are called in the order of the sequence,
// from one goroutine.
type Child struct {
	f      *os.File // nil once closed
	proto2 bool     // the old process speaks protocol 2
	log    *slog.Logger
}

// FromEnv returns the channel to the old process when this process was
// started by a graceful restart, or nil. It unsets the variables that
// said so, so that no child of this process takes them for its own.
func FromEnv() *Child {
	v, p := os.Getenv(handoverEnv), os.Getenv(protoEnv)
	os.Unsetenv(handoverEnv)
	os.Unsetenv(protoEnv)
	if v == "" {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < listenFDsStart {
		return nil
	}
	syscall.CloseOnExec(fd)
	return &Child{f: os.NewFile(uintptr(fd), "handover"), proto2: p == proto}
}

// Ready tells the old process that this one loaded fine; from then on
// the old one stops accepting. log is the process's logger, for what
// follows.
func (c *Child) Ready(log *slog.Logger) {
	c.log = log
	msg := msgReady2
	if !c.proto2 {
		msg = msgReady
	}
	if _, err := io.WriteString(c.f, msg+"\n"); err != nil {
		log.Warn("graceful restart: readiness not sent", "err", err)
	}
	if !c.proto2 {
		c.close()
	}
	log.Info("graceful restart: waiting for the old process to release the spool")
}

// AwaitRelease waits until the old process has released the spool, and
// reports whether it said so: false when the old process is an older
// version (it says nothing: the spool is free when it exits) or when it
// exited without a word, and opening the spool needs RetryOpen. Meanwhile
// SIGHUP calls reload and SIGUSR2 is ignored; SIGTERM and SIGINT end the
// wait with an error.
func (c *Child) AwaitRelease(sigs <-chan os.Signal, reload func()) (bool, error) {
	done := make(chan bool, 1)
	go func() { done <- c.released() }()
	for {
		select {
		case ok := <-done:
			return ok, nil
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				reload()
			case syscall.SIGUSR2:
				c.log.Warn("graceful restart: not serving yet: SIGUSR2 ignored")
			default:
				return false, fmt.Errorf("handover: %v while waiting for the old process to release the spool", sig)
			}
		}
	}
}

// released waits until the old process has closed the spool and reports
// whether it said so.
func (c *Child) released() bool {
	if !c.proto2 {
		return false
	}
	line, err := bufio.NewReader(c.f).ReadString('\n')
	if err != nil || strings.TrimSuffix(line, "\n") != msgReleased {
		c.log.Warn("graceful restart: the old process did not say it released the spool", "err", err, "got", line)
		return false
	}
	c.log.Info("graceful restart: the old process released the spool")
	return true
}

// Serving tells the old process that this one serves; the old one then
// exits.
func (c *Child) Serving() {
	if c.f == nil || !c.proto2 {
		return
	}
	if _, err := io.WriteString(c.f, msgServing+"\n"); err != nil {
		c.log.Warn("graceful restart: serving not sent", "err", err)
	}
	c.close()
}

// Fail tells the old process, which still serves, that this one failed
// with err and is about to exit; the old process logs err in its own
// structured event. It reports whether the old process was told: when
// not (an older old process, or this one served already), the caller
// reports err itself.
func (c *Child) Fail(err error) bool {
	if c == nil || c.f == nil || !c.proto2 {
		return false
	}
	text := strings.Join(strings.Fields(err.Error()), " ") // one line
	if len(text) > maxFailed {
		text = text[:maxFailed] + "..."
	}
	_, werr := io.WriteString(c.f, msgFailed+text+"\n")
	c.close()
	return werr == nil
}

func (c *Child) close() {
	c.f.Close()
	c.f = nil
}

// RetryOpen calls open until it succeeds; with retry it tries again
// every 100 ms for up to SpoolTimeout, while an older old process may
// still hold what it opens (the spool), and returns the last error.
func RetryOpen[T any](retry bool, open func() (T, error)) (T, error) {
	deadline := time.Now().Add(SpoolTimeout)
	for {
		v, err := open()
		if err == nil || !retry || time.Now().After(deadline) {
			return v, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
