package spool

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"postern/internal/smtp"
	"postern/internal/spool/spooltest"
)

// blobNames lists the files in the spool's blob directory.
func blobNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// streamBlob writes msg into a new Blob of s as a session does: the whole
// message as it arrives; it returns the Blob and the message whose body
// is the Blob's bytes after the header section.
func streamBlob(t *testing.T, s *Spool, id string, data []byte) (*Blob, *smtp.Message) {
	t.Helper()
	b, err := s.createBlob(id)
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; {
		n := min(len(p), 4096)
		if _, err := b.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	end := smtp.HeaderEnd(data)
	return b, &smtp.Message{Header: bytes.Clone(data[:end]), Body: smtp.BodyFile(b, int64(end), int64(len(data)-end))}
}

// openAll reads message id back with Open, whole.
func openAll(t *testing.T, s *Spool, id string) []byte {
	t.Helper()
	_, m, err := s.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	return spooltest.Bytes(&m.Message)
}

// A large message streamed into a Blob is stored by reference: the file
// becomes its body (named by its id, nothing copied into the segment), it
// reads back the same before and after a reopen, with the header section
// the session gave (here a replaced one), and its blob is removed once
// the message is done.
func TestBlobPutOpenReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	id := spooltest.ID()
	data := spooltest.Data(id, 1<<20)
	b, msg := streamBlob(t, s, id, data)
	if got := blobNames(t, dir); len(got) != 0 {
		t.Fatalf("blob named before PutMessage: %v", got)
	}
	msg.Header = append([]byte("Received: by test\r\n"), msg.Header...)
	want := append([]byte("Received: by test\r\n"), data...)
	if err := s.PutMessage(context.Background(), spooltest.Env(id, "a@x"), msg); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if got := blobNames(t, dir); !slices.Equal(got, []string{id}) {
		t.Fatalf("blobs = %v, want [%s]", got, id)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "segments", segName(1))); fi == nil || fi.Size() > 4096 {
		t.Errorf("the segment holds the body: %v", fi)
	}
	if got := openAll(t, s, id); !bytes.Equal(got, want) {
		t.Fatal("message read back differs")
	}
	if _, hdr, err := s.Header(id); err != nil || !bytes.Equal(hdr, want[:smtp.HeaderEnd(want)]) {
		t.Errorf("Header = %q, %v", hdr, err)
	}
	if it, err := s.Lookup(id); err != nil || it.Size != int64(len(want)) {
		t.Errorf("Lookup: size %d, want %d (%v)", it.Size, len(want), err)
	}
	s = reopen(t, s, dir)
	if _, got, err := s.Get(id); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after reopen: %v, equal %v", err, bytes.Equal(got, want))
	}
	if err := s.MarkRecipientSync(id, "a@x", RecipientState{Status: StatusDelivered}); err != nil {
		t.Fatal(err)
	}
	if got := blobNames(t, dir); len(got) != 0 {
		t.Errorf("blob of a done message kept: %v", got)
	}
	if _, _, err := s.Open(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open of a done message without its blob: %v, want ErrNotFound", err)
	}
}

// Put and PutMessage keep small bodies in the record and give large ones
// in memory a blob of their own (copied in the caller's goroutine).
func TestPutInlineOrBlob(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	defer s.Close()
	small, large := spooltest.ID(), spooltest.ID()
	mustPut(t, s, spooltest.Env(small), spooltest.Data(small, InlineMax-100))
	mustPut(t, s, spooltest.Env(large), spooltest.Data(large, InlineMax+100))
	if got := blobNames(t, dir); !slices.Equal(got, []string{large}) {
		t.Fatalf("blobs = %v, want [%s]", got, large)
	}
	for _, id := range []string{small, large} {
		size := InlineMax - 100
		if id == large {
			size = InlineMax + 100
		}
		if _, got, err := s.Get(id); err != nil || !bytes.Equal(got, spooltest.Data(id, size)) {
			t.Errorf("%s: %v", id, err)
		}
	}
}

// A Blob nobody took leaves nothing behind; at Open neither does a blob
// that never got its record and trailer (a crash before PutMessage ended:
// never acknowledged), nor one cut short, nor a temporary file of a file
// system without O_TMPFILE. Complete blobs come back as messages.
func TestBlobRecovery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	b, _ := streamBlob(t, s, spooltest.ID(), spooltest.Data("x", 200<<10))
	b.Close()
	if got := blobNames(t, dir); len(got) != 0 {
		t.Fatalf("discarded blob left %v", got)
	}
	kept, cut := spooltest.ID(), spooltest.ID()
	mustPut(t, s, spooltest.Env(kept), spooltest.Data(kept, 300<<10))
	mustPut(t, s, spooltest.Env(cut), spooltest.Data(cut, 300<<10))
	s.Close()
	for _, name := range []string{"t9999999999999999999", "t9999999999999999998.tmp"} {
		if err := os.WriteFile(filepath.Join(dir, "blobs", name), bytes.Repeat([]byte("orphan"), 100), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A blob whose end never reached the disk.
	p := filepath.Join(dir, "blobs", cut)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, fi.Size()-1); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	s, err = Open(Options{Dir: dir, Logger: testLogger(&log)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := blobNames(t, dir); !slices.Equal(got, []string{kept}) {
		t.Errorf("blobs after recovery = %v, want [%s]", got, kept)
	}
	var ids []string
	for _, it := range s.List() {
		ids = append(ids, it.ID)
	}
	if !slices.Equal(ids, []string{kept}) {
		t.Errorf("live messages = %v, want [%s]", ids, kept)
	}
	if _, got, err := s.Get(kept); err != nil || !bytes.Equal(got, spooltest.Data(kept, 300<<10)) {
		t.Errorf("recovered message: %v", err)
	}
	if !strings.Contains(log.String(), "incomplete blob removed") || !strings.Contains(log.String(), cut) {
		t.Errorf("no warning for the blob cut short:\n%s", log.String())
	}
}

// Large messages never write into the segments, whose records stay at
// versions an older release reads: a rollback after a failed graceful
// restart loses none of the small messages behind a large one.
func TestSegmentsStayReadable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	for i := range 6 {
		id := spooltest.ID()
		size := 1000
		if i%2 == 1 {
			size = 300 << 10
		}
		mustPut(t, s, spooltest.Env(id), spooltest.Data(id, size))
	}
	s.Close()
	seg, err := os.ReadFile(filepath.Join(dir, "segments", segName(1)))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for off := 0; off < len(seg); n++ {
		rh, err := parseHeader(seg[off:])
		if err != nil || rh.version > recordVersion {
			t.Fatalf("record %d at %d: version %d, %v", n, off, rh.version, err)
		}
		off += recordHeaderLen + int(rh.envLen+rh.dataLen)
	}
	if n != 3 {
		t.Errorf("%d records in the segment, want the 3 small messages", n)
	}
}

// A second message with the id of a spooled large one is refused, and
// the first keeps its body.
func TestBlobDuplicate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	defer s.Close()
	id := spooltest.ID()
	data := spooltest.Data(id, 300<<10)
	mustPut(t, s, spooltest.Env(id), data)
	for _, other := range [][]byte{spooltest.Data("other", 300<<10), spooltest.Data("other", 100)} {
		if err := s.Put(context.Background(), spooltest.Env(id), other); !errors.Is(err, ErrDuplicate) {
			t.Errorf("Put of a duplicate id: %v, want ErrDuplicate", err)
		}
	}
	if _, got, err := s.Get(id); err != nil || !bytes.Equal(got, data) {
		t.Errorf("first message damaged: %v", err)
	}
	// A small message first, then a large one with its id.
	id2 := spooltest.ID()
	mustPut(t, s, spooltest.Env(id2), spooltest.Data(id2, 100))
	if err := s.Put(context.Background(), spooltest.Env(id2), spooltest.Data("x", 300<<10)); !errors.Is(err, ErrDuplicate) {
		t.Errorf("large duplicate of a small message: %v, want ErrDuplicate", err)
	}
	if got := blobNames(t, dir); !slices.Equal(got, []string{id}) {
		t.Errorf("blobs = %v, want [%s]", got, id)
	}
}

// PutMessage copies a body that is not in a Blob of its own for the
// message's id into a blob of its own.
func TestBlobForeignBodyCopied(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	defer s.Close()
	id := spooltest.ID()
	data := spooltest.Data(id, 400<<10)
	// The body in some other file: copied.
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(data)
	end := smtp.HeaderEnd(data)
	msg := &smtp.Message{Header: data[:end], Body: smtp.BodyFile(f, int64(end), int64(len(data)-end))}
	if err := s.PutMessage(context.Background(), spooltest.Env(id), msg); err != nil {
		t.Fatal(err)
	}
	if got := openAll(t, s, id); !bytes.Equal(got, data) {
		t.Error("copied body differs")
	}
	// A Blob made for another id is not taken either.
	b, msg2 := streamBlob(t, s, "zzz", data)
	defer b.Close()
	id2 := spooltest.ID()
	if err := s.PutMessage(context.Background(), spooltest.Env(id2), msg2); err != nil {
		t.Fatal(err)
	}
	if got := openAll(t, s, id2); !bytes.Equal(got, data) {
		t.Error("body of another id's blob differs")
	}
	if _, err := s.createBlob("../x"); err == nil {
		t.Error("CreateFile accepted a path as id")
	}
}

// testLogger logs to w.
func testLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// Where the file system has no O_TMPFILE, a Blob is named ID.tmp until
// PutMessage links it: a discarded one and a taken one leave no .tmp.
func TestBlobNamedFallback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	defer s.Close()
	s.unnamed = false
	b, _ := streamBlob(t, s, spooltest.ID(), spooltest.Data("x", 200<<10))
	if got := blobNames(t, dir); len(got) != 1 || !strings.HasSuffix(got[0], ".tmp") {
		t.Fatalf("blobs while writing = %v, want one .tmp", got)
	}
	b.Close()
	id := spooltest.ID()
	data := spooltest.Data(id, 300<<10)
	b, msg := streamBlob(t, s, id, data)
	if err := s.PutMessage(context.Background(), spooltest.Env(id), msg); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if got := blobNames(t, dir); !slices.Equal(got, []string{id}) {
		t.Errorf("blobs = %v, want [%s]", got, id)
	}
	if got := openAll(t, s, id); !bytes.Equal(got, data) {
		t.Error("message differs")
	}
}

// FuzzDecodeEnvelopeRef checks the envelope decoder of version-4 records
// with and without a blob reference: whatever it accepts encodes back to
// the same envelope and reference.
func FuzzDecodeEnvelopeRef(f *testing.F) {
	f.Add(appendEnvelopeRef(nil, spooltest.Env("abc", "a@x", "b@y"), blobRecordVersion, &blobRef{off: 100, n: 1 << 20}), byte(blobRecordVersion))
	f.Add(appendEnvelopeRef(nil, spooltest.Env("abd", "a@x"), blobRecordVersion, nil), byte(blobRecordVersion))
	f.Add(appendEnvelope(nil, spooltest.Env("abe", "a@x"), recordVersion), byte(recordVersion))
	f.Fuzz(func(t *testing.T, b []byte, version byte) {
		env, ref, err := decodeEnvelopeRef(b, version)
		if err != nil {
			return
		}
		if ref != nil && (ref.n <= 0 || ref.off < 0 || ref.off > maxBlobLen || ref.n > maxBlobLen) {
			t.Fatalf("accepted blob reference %+v", *ref)
		}
		v := max(versionFor(env, ref), blobRecordVersion)
		env2, ref2, err := decodeEnvelopeRef(appendEnvelopeRef(nil, env, v, ref), v)
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if !reflect.DeepEqual(env, env2) || (ref == nil) != (ref2 == nil) || ref != nil && *ref != *ref2 {
			t.Fatalf("round trip changed %+v %v into %+v %v", env, ref, env2, ref2)
		}
	})
}
