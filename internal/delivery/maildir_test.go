package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"postern/internal/smtp"
	"postern/internal/testkit"
)

func newFiles(t *testing.T, root, domain, user string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, domain, user, "new", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func TestMaildirDeliver(t *testing.T) {
	root := t.TempDir()
	m := &Maildir{Root: root, Now: func() time.Time { return time.Unix(1_800_000_000, 123_456_000) }}
	msg := []byte("Subject: hi\r\n\r\nbody\r\n")
	if err := m.Deliver(context.Background(), "Bob.Smith@Example.ORG", "a@example.net", msg); err != nil {
		t.Fatal(err)
	}
	data := append([]byte("Return-Path: <a@example.net>\r\n"), msg...)
	files := newFiles(t, root, "example.org", "bob.smith")
	if len(files) != 1 {
		t.Fatalf("%d files in new/, want 1", len(files))
	}
	got, _ := os.ReadFile(files[0])
	if !bytes.Equal(got, data) {
		t.Errorf("content = %q, want %q", got, data)
	}
	name := filepath.Base(files[0])
	re := regexp.MustCompile(fmt.Sprintf(`^1800000000\.M123456P%dQ1\.[^/:]+,S=%d$`, os.Getpid(), len(data)))
	if !re.MatchString(name) {
		t.Errorf("file name %q does not match %v", name, re)
	}
	for _, sub := range []string{"tmp", "cur"} {
		fi, err := os.Stat(filepath.Join(root, "example.org", "bob.smith", sub))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s/: %v %v", sub, fi, err)
		}
	}
	if tmp, _ := os.ReadDir(filepath.Join(root, "example.org", "bob.smith", "tmp")); len(tmp) != 0 {
		t.Errorf("%d files left in tmp/", len(tmp))
	}
}

// Both ways of writing a message (an O_TMPFILE linked into new/, and
// tmp/ then a rename where O_TMPFILE is missing) give the same result: a
// complete file of mode 0600 in new/, nothing left in tmp/, the mailbox
// created on first use.
func TestMaildirWriteModes(t *testing.T) {
	for _, viaTmp := range []bool{false, true} {
		t.Run(fmt.Sprintf("viaTmp=%v", viaTmp), func(t *testing.T) {
			root := t.TempDir()
			m := &Maildir{Root: root}
			m.noTmpfile.Store(viaTmp)
			for i, data := range [][]byte{[]byte("Subject: 1\r\n\r\none\r\n"), []byte("Subject: 2\r\n\r\ntwo\r\n")} {
				if err := m.Deliver(context.Background(), "u@example.org", "", data); err != nil {
					t.Fatal(err)
				}
				files := newFiles(t, root, "example.org", "u")
				if len(files) != i+1 {
					t.Fatalf("%d files in new/ after %d deliveries", len(files), i+1)
				}
			}
			var contents []string
			for _, f := range newFiles(t, root, "example.org", "u") {
				fi, err := os.Stat(f)
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: %v %v", f, fi, err)
				}
				b, _ := os.ReadFile(f)
				contents = append(contents, string(b))
			}
			slices.Sort(contents)
			if want := []string{"Return-Path: <>\r\nSubject: 1\r\n\r\none\r\n", "Return-Path: <>\r\nSubject: 2\r\n\r\ntwo\r\n"}; !slices.Equal(contents, want) {
				t.Errorf("contents %q, want %q", contents, want)
			}
			if tmp, _ := os.ReadDir(filepath.Join(root, "example.org", "u", "tmp")); len(tmp) != 0 {
				t.Errorf("%d files left in tmp/", len(tmp))
			}
			if m.noTmpfile.Load() != viaTmp {
				t.Errorf("noTmpfile = %v: the O_TMPFILE way fell back on this file system", m.noTmpfile.Load())
			}
		})
	}
}

func TestMaildirDeliveredTo(t *testing.T) {
	root := t.TempDir()
	m := &Maildir{Root: root, DeliveredTo: true}
	data := []byte("Subject: hi\r\n\r\nbody\r\n")
	if err := m.Deliver(context.Background(), "Ann@Example.org", "a@example.net", data); err != nil {
		t.Fatal(err)
	}
	files := newFiles(t, root, "example.org", "ann")
	if len(files) != 1 {
		t.Fatalf("%d files", len(files))
	}
	got, _ := os.ReadFile(files[0])
	want := "Return-Path: <a@example.net>\r\nDelivered-To: ann@example.org\r\n" + string(data)
	if string(got) != want {
		t.Errorf("content = %q, want %q", got, want)
	}
	if name := filepath.Base(files[0]); !regexp.MustCompile(fmt.Sprintf(`,S=%d$`, len(want))).MatchString(name) {
		t.Errorf("size in name %q does not count the header", name)
	}
}

func TestMaildirRefusesPathTricks(t *testing.T) {
	root := t.TempDir()
	m := &Maildir{Root: root}
	for _, mb := range []string{
		"../x@example.org", "x@../etc", "a/b@example.org", "a@b/c", "..@example.org",
		"x@..", ".hidden@example.org", "x@.example.org", "a\x00b@example.org",
		"noat", "@example.org", "x@", `a\b@example.org`, "x@a..b",
	} {
		err := m.Deliver(context.Background(), mb, "", []byte("x"))
		if !errors.Is(err, ErrBadMailbox) {
			t.Errorf("Deliver(%q) err = %v, want ErrBadMailbox", mb, err)
		}
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 0 {
		t.Errorf("refused deliveries created %d entries", len(entries))
	}
	if err := m.Deliver(context.Background(), "o'brien+tag@sub.example.org", "", []byte("x")); err != nil {
		t.Errorf("ordinary address refused: %v", err)
	}
}

func TestMaildirConcurrentSharesDirSync(t *testing.T) {
	root := t.TempDir()
	m := &Maildir{Root: root}
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := m.Deliver(context.Background(), "box@example.org", "", fmt.Appendf(nil, "message %d\r\n", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := len(newFiles(t, root, "example.org", "box")); got != n {
		t.Fatalf("%d files, want %d", got, n)
	}
	t.Logf("%d deliveries: %d file fsyncs, %d new/ fsyncs", n, m.fsyncs.Load(), m.dirSyncs.Load())
	if m.dirSyncs.Load() > n {
		t.Errorf("%d directory fsyncs for %d deliveries", m.dirSyncs.Load(), n)
	}
}

func BenchmarkMaildirDeliver(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"), 10<<10/74)
	for _, bc := range []struct {
		workers int
		own     bool
	}{{1, false}, {8, false}, {8, true}, {32, false}, {32, true}} {
		name := fmt.Sprintf("workers=%d", bc.workers)
		if bc.workers > 1 {
			name += map[bool]string{false: "/shared-dirsync", true: "/own-dirsync"}[bc.own]
		}
		par := bc.workers
		b.Run(name, func(b *testing.B) {
			m := &Maildir{Root: b.TempDir(), ownDirSync: bc.own}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.SetParallelism(max(1, par/runtime.GOMAXPROCS(0)))
			if par == 1 {
				for b.Loop() {
					if err := m.Deliver(context.Background(), "bench@example.org", "a@example.net", data); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := m.Deliver(context.Background(), "bench@example.org", "a@example.net", data); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(m.dirSyncs.Load())/float64(b.N), "dirsyncs/msg")
		})
	}
}

// TestMaildirDeliverAllocs bounds the allocations of a delivery into an
// existing mailbox (the paths, the file name, the system calls' C
// strings), with O_TMPFILE and through tmp/: it runs before every 250
// of local mail.
func TestMaildirDeliverAllocs(t *testing.T) {
	for _, c := range []struct {
		viaTmp bool
		max    float64
	}{{false, 11}, {true, 14}} { // writev's header slice is one: two system calls fewer
		m := &Maildir{Root: t.TempDir()}
		m.noTmpfile.Store(c.viaTmp)
		ctx := context.Background()
		msg := &smtp.Message{Header: []byte("S: x\r\n\r\n"), Body: smtp.BodyBytes([]byte("b\r\n"))}
		if err := m.DeliverMessage(ctx, "bench@example.org", "a@example.net", msg); err != nil {
			t.Fatal(err)
		}
		a := testing.AllocsPerRun(50, func() {
			if err := m.DeliverMessage(ctx, "bench@example.org", "a@example.net", msg); err != nil {
				t.Fatal(err)
			}
		})
		if m.noTmpfile.Load() != c.viaTmp {
			t.Fatalf("O_TMPFILE unavailable here")
		}
		if testkit.Race {
			c.max += 4 // the race detector's own
		}
		if a > c.max {
			t.Errorf("via tmp/ %v: %v allocations a delivery, want at most %v", c.viaTmp, a, c.max)
		}
	}
}

func TestMaildirConcurrentFirstDeliveries(t *testing.T) {
	// Deliveries racing to create a new mailbox must all succeed: none
	// may find tmp/ made but new/ not yet.
	root := t.TempDir()
	m := &Maildir{Root: root}
	for box := range 20 {
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if err := m.Deliver(context.Background(), fmt.Sprintf("u%d@example.org", box), "", []byte("x")); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
}

// Only errors that say O_TMPFILE files cannot be linked here turn the
// tmp/ fallback on for good; a full disk or a quota fails the delivery
// (which is retried) and leaves the faster way on.
func TestCannotLink(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&os.LinkError{Op: "linkat", Err: unix.ENOENT}, true},
		{&os.LinkError{Op: "linkat", Err: unix.EPERM}, true},
		{&os.LinkError{Op: "linkat", Err: unix.EOPNOTSUPP}, true},
		{&os.LinkError{Op: "linkat", Err: unix.ENOSPC}, false},
		{&os.LinkError{Op: "linkat", Err: unix.EDQUOT}, false},
		{&os.LinkError{Op: "linkat", Err: unix.EEXIST}, false},
		{errors.New("other"), false},
	} {
		if got := cannotLink(c.err); got != c.want {
			t.Errorf("cannotLink(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestWritevFull: the buffers arrive whole and in order, empty ones
// included; after a short write, advance resumes where it stopped.
func TestWritevFull(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r := os.NewFile(uintptr(p[0]), "r")
	defer r.Close()
	a, c := bytes.Repeat([]byte("a"), 3000), bytes.Repeat([]byte("0123456789"), 30000)
	got := make(chan string, 1)
	go func() { all, _ := io.ReadAll(r); got <- string(all) }()
	err := writevFull(p[1], [][]byte{a, {}, c, []byte("z")})
	unix.Close(p[1])
	if err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != string(a)+string(c)+"z" {
		t.Errorf("read %d bytes, want %d in order", len(g), len(a)+len(c)+1)
	}
	for _, c := range []struct {
		n    int
		want string
	}{{0, "ab||cd|e"}, {1, "b||cd|e"}, {2, "cd|e"}, {3, "d|e"}, {4, "e"}, {5, ""}} {
		got := advance([][]byte{[]byte("ab"), {}, []byte("cd"), []byte("e")}, c.n)
		if s := string(bytes.Join(got, []byte("|"))); s != c.want {
			t.Errorf("advance %d: %q, want %q", c.n, s, c.want)
		}
	}
}
