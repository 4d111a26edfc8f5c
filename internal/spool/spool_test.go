package spool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"postern/internal/smtp"
	"postern/internal/spool/spooltest"
)

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	env := spooltest.Env("abc", "a@x", "b@y")
	data := []byte("hello\r\n")
	rec := appendRecord(nil, env, data)
	rh, err := parseHeader(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRecord(rh, rec); err != nil {
		t.Fatal(err)
	}
	got, err := decodeEnvelope(rec[recordHeaderLen:recordHeaderLen+rh.envLen], rh.version)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ReceivedAt.Equal(env.ReceivedAt) {
		t.Errorf("ReceivedAt = %v, want %v", got.ReceivedAt, env.ReceivedAt)
	}
	got.ReceivedAt = env.ReceivedAt
	if !reflect.DeepEqual(got, env) {
		t.Errorf("envelope = %+v, want %+v", got, env)
	}
	if !bytes.Equal(rec[recordHeaderLen+rh.envLen:], data) {
		t.Error("data mismatch")
	}
	for i := range rec {
		bad := bytes.Clone(rec)
		bad[i] ^= 0x40
		rh, err := parseHeader(bad)
		if err == nil && int64(len(bad)) != recordHeaderLen+rh.envLen+rh.dataLen {
			continue // a length change: the scan sees a record that does not fit
		}
		if err == nil {
			err = checkRecord(rh, bad)
		}
		if err == nil {
			t.Fatalf("flipping byte %d went undetected", i)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(appendEnvelope(nil, spooltest.Env("abc", "a@x", "b@y"), 1), byte(1))
	held := spooltest.Env("abd", "a@x")
	held.Hold, held.HoldReason = true, "send limit: messages per hour"
	f.Add(appendEnvelope(nil, held, recordVersion), byte(recordVersion))
	f.Add([]byte{}, byte(2))
	dsn := spooltest.Env("abf", "a@x", "b@y")
	dsn.Ret, dsn.EnvID = "FULL", "id"
	dsn.DSN = map[string]smtp.RcptDSN{"b@y": {Notify: smtp.NotifySuccess, ORcpt: "rfc822;c@z"}}
	f.Add(appendEnvelope(nil, dsn, dsnRecordVersion), byte(dsnRecordVersion))
	f.Fuzz(func(t *testing.T, b []byte, version byte) {
		env, err := decodeEnvelope(b, version)
		if err != nil {
			return
		}
		v := versionFor(env, nil)
		again, err := decodeEnvelope(appendEnvelope(nil, env, v), v)
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if !reflect.DeepEqual(again, env) {
			t.Fatalf("round trip changed %+v into %+v", env, again)
		}
	})
}

func TestPutGetReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	want := map[string][]byte{}
	for i := range 10 {
		id := spooltest.ID()
		want[id] = spooltest.Data(id, 100*i)
		mustPut(t, s, spooltest.Env(id, "a@x", "b@y"), want[id])
	}
	check := func(s *Spool) {
		t.Helper()
		if n := len(s.List()); n != len(want) {
			t.Fatalf("List has %d items, want %d", n, len(want))
		}
		for id, data := range want {
			env, got, err := s.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			if env.ID != id || len(env.Recipients) != 2 || !bytes.Equal(got, data) {
				t.Fatalf("Get(%s) = %+v, %d bytes", id, env, len(got))
			}
		}
	}
	check(s)
	s = reopen(t, s, dir)
	check(s)
	if _, _, err := s.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nope) err = %v, want ErrNotFound", err)
	}
}

func TestPutErrors(t *testing.T) {
	t.Parallel()
	s := openTest(t, t.TempDir(), 0)
	id := spooltest.ID()
	mustPut(t, s, spooltest.Env(id), []byte("x"))
	if err := s.Put(context.Background(), spooltest.Env(id), []byte("y")); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate Put: err = %v, want ErrDuplicate", err)
	}
	// Two Puts of one id in the same batch: exactly one wins.
	id2 := spooltest.ID()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Put(context.Background(), spooltest.Env(id2), []byte("z")) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, ErrDuplicate) {
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d Puts of one id succeeded, want 1", ok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Put(ctx, spooltest.Env(spooltest.ID()), []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with cancelled ctx: err = %v", err)
	}
	if err := s.Put(context.Background(), &smtp.Envelope{ID: spooltest.ID()}, nil); err == nil {
		t.Error("Put without recipients succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), spooltest.Env(spooltest.ID()), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: err = %v, want ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: err = %v", err)
	}
}

func TestGroupCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A 3 ms flush, as on a disk without a power-safe write cache, so the
	// test does not depend on how fast goroutines start.
	s, err := Open(Options{Dir: dir, Logger: quietLogger(),
		beforeSync: func() { time.Sleep(3 * time.Millisecond) }})
	if err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	const n = 64
	start := make(chan struct{})
	var wg sync.WaitGroup
	ids := make([]string, n)
	for i := range n {
		ids[i] = spooltest.ID()
		wg.Go(func() {
			<-start
			if err := s.Put(context.Background(), spooltest.Env(ids[i]), spooltest.Data(ids[i], 10<<10)); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	st := s.Stats()
	fsyncs, commits := st.Fsyncs-before.Fsyncs, st.Commits-before.Commits
	t.Logf("%d messages: %d commits, %d fsyncs", n, commits, fsyncs)
	if st.Messages-before.Messages != n {
		t.Fatalf("Messages = %d, want %d", st.Messages-before.Messages, n)
	}
	if fsyncs > 8 {
		t.Errorf("%d fsyncs for %d concurrent messages: group commit is not grouping", fsyncs, n)
	}
	s = reopen(t, s, dir)
	for _, id := range ids {
		_, data, err := s.Get(id)
		if err != nil || !bytes.Equal(data, spooltest.Data(id, 10<<10)) {
			t.Fatalf("after reopen Get(%s): %v", id, err)
		}
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 4<<10)
	var ids []string
	for range 20 {
		id := spooltest.ID()
		ids = append(ids, id)
		mustPut(t, s, spooltest.Env(id), spooltest.Data(id, 1500))
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	if len(segs) < 5 {
		t.Errorf("%d segments for 30 KB in 4 KB segments", len(segs))
	}
	s = openTest(t, dir, 4<<10)
	defer s.Close()
	for _, id := range ids {
		if _, data, err := s.Get(id); err != nil || !bytes.Equal(data, spooltest.Data(id, 1500)) {
			t.Fatalf("Get(%s): %v", id, err)
		}
	}
}

// lastSegment returns the path of the newest non-empty segment in dir.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	for i := len(segs) - 1; i >= 0; i-- {
		if fi, err := os.Stat(segs[i]); err == nil && fi.Size() > 0 {
			return segs[i]
		}
	}
	t.Fatal("no non-empty segment")
	return ""
}

func TestTornTail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		damage func(path string, offs []int64) error
	}{
		{"truncate mid-record", func(path string, offs []int64) error {
			return os.Truncate(path, offs[7]+recordHeaderLen+30)
		}},
		{"truncate mid-header", func(path string, offs []int64) error {
			return os.Truncate(path, offs[7]+5)
		}},
		{"flipped byte", func(path string, offs []int64) error {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte{0xff}, offs[7]+recordHeaderLen+100)
			return err
		}},
		{"zeros appended", func(path string, offs []int64) error {
			if err := os.Truncate(path, offs[7]); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write(make([]byte, 4096))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir, 0)
			var ids []string
			var offs []int64
			for range 10 {
				id := spooltest.ID()
				ids = append(ids, id)
				mustPut(t, s, spooltest.Env(id), spooltest.Data(id, 500))
				s.mu.RLock()
				offs = append(offs, s.index[id].off)
				s.mu.RUnlock()
			}
			s.Close()
			if err := tc.damage(lastSegment(t, dir), offs); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, 0)
			defer s.Close()
			for i, id := range ids {
				_, data, err := s.Get(id)
				if i < 7 && (err != nil || !bytes.Equal(data, spooltest.Data(id, 500))) {
					t.Errorf("record %d lost: %v", i, err)
				}
				if i >= 7 && !errors.Is(err, ErrNotFound) {
					t.Errorf("record %d after the damage: err = %v, want ErrNotFound", i, err)
				}
			}
			// New Puts after recovery land in a fresh segment and survive.
			id := spooltest.ID()
			mustPut(t, s, spooltest.Env(id), []byte("after\r\n"))
			s.Close()
			s = openTest(t, dir, 0)
			if _, _, err := s.Get(id); err != nil {
				t.Errorf("message put after recovery: %v", err)
			}
		})
	}
}

func TestCancelledPutDoesNotBlock(t *testing.T) {
	t.Parallel()
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			id := spooltest.ID()
			err := s.Put(ctx, spooltest.Env(id), spooltest.Data(id, 100))
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// fullEnv returns an envelope with every field of smtp.Envelope set to a
// value that is not its zero value; it fails t when a field is left
// zero, so that a field added to the envelope must be added here, and
// then to the record (the spool must keep every field).
func fullEnv(t *testing.T, id string) *smtp.Envelope {
	t.Helper()
	env := spooltest.Env(id, "a@x", "b@y")
	env.RequireTLS, env.Hold, env.HoldReason = true, true, "send limit: messages per hour"
	env.Ret, env.EnvID = "HDRS", "QQ 314159"
	env.DSN = map[string]smtp.RcptDSN{"a@x": {Notify: smtp.NotifySuccess | smtp.NotifyDelay, ORcpt: "rfc822;old@x"},
		"b@y": {Notify: smtp.NotifyNever}}
	v := reflect.ValueOf(env).Elem()
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("fullEnv leaves smtp.Envelope.%s zero: set it, and store it in the record", v.Type().Field(i).Name)
		}
	}
	return env
}

// Every field of the envelope survives the spool, in a segment and in a
// blob, and across a restart: there is no copy by hand between the
// session's envelope and the spool's (issue 15 §1).
func TestEnvelopeFieldsSurvive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	small, large := fullEnv(t, spooltest.ID()), fullEnv(t, spooltest.ID())
	mustPut(t, s, small, spooltest.Data(small.ID, 100))
	mustPut(t, s, large, spooltest.Data(large.ID, InlineMax+1000))
	check := func(when string) {
		for _, want := range []*smtp.Envelope{small, large} {
			got, _, err := s.Get(want.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.ReceivedAt.Equal(want.ReceivedAt) {
				t.Errorf("%s: ReceivedAt = %v, want %v", when, got.ReceivedAt, want.ReceivedAt)
			}
			got.ReceivedAt = want.ReceivedAt
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: envelope\n%+v\nwant\n%+v", when, got, want)
			}
		}
	}
	check("after Put")
	s = reopen(t, s, dir)
	check("after reopening")
}

// A segment whose messages are all done, and that is not the one being
// appended to, is removed with the stored states of its messages.
func TestDoneSegmentsRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 8<<10)
	defer s.Close()
	var ids []string
	for range 30 {
		id := spooltest.ID()
		ids = append(ids, id)
		mustPut(t, s, spooltest.Env(id, "u1@x", "u2@y"), spooltest.Data(id, 2000))
	}
	for _, id := range ids {
		for _, r := range []string{"u1@x", "u2@y"} {
			if err := s.MarkRecipientSync(id, r, RecipientState{Status: StatusDelivered}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg")); len(segs) != 1 {
		t.Errorf("%d segments left, want the active one: %v", len(segs), segs)
	}
	stored, err := loadStates(s.db)
	if err != nil {
		t.Fatal(err)
	}
	for id := range stored {
		if _, err := s.Lookup(id); err != nil {
			t.Errorf("state of %s kept after its segment was removed", id)
		}
	}
	if len(stored) >= 30 {
		t.Errorf("%d stored states for 30 done messages: removed segments kept theirs", len(stored))
	}
	if _, _, err := s.Get(ids[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a message in a removed segment: %v", err)
	}
}
