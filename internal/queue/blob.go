package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"postern/internal/fsutil"
	"postern/internal/smtp"
)

// Large messages.
//
// A message whose body is larger than Options.InlineMax does not go
// through the writer: its body is a file of its own, Dir/blobs/ID (a
// blob), and its record in the segment holds the envelope, the header
// section and a reference to the blob (offset and length of the body in
// it). The single writer goroutine copies and fsyncs only that small
// record, with the rest of its group: a 30 MB message costs the small
// messages committed beside it nothing.
//
// A session streams a large message into a Blob as it arrives
// (CreateBlob), before the spool knows whether it will take it. The
// Blob is an unnamed file in Dir/blobs (O_TMPFILE; where the file system
// lacks it, ID.tmp), so that a crash while it is written leaves nothing
// to clean up. PutMessage then makes that very file the message's body,
// in the caller's goroutine: fdatasync the file, link it as
// Dir/blobs/ID, fsync Dir/blobs (shared by concurrent callers), and only
// then hand the record to the writer. The blob is thus durable, name
// included, before any record that refers to it, and the 250 waits for
// both. The message is never copied: the bytes the session wrote are
// the bytes delivered. (Copying the file into the segment instead would
// hold the writer, and every small message waiting on it, for as long
// as it takes to write and fsync 30 MB.)
//
// A blob without a record (a crash between the link and the commit, or
// a commit that failed) is removed by Open. A record whose blob is
// missing was never acknowledged (or the disk lost it): Open logs it and
// drops the message. A blob is removed once its message is done and
// that state is committed, or with its segment.

// DefaultInlineMax is the largest body Put and PutMessage copy into the
// segment with its record; a larger one gets a blob file.
const DefaultInlineMax = 128 << 10

// maxBlobLen bounds the blob offset and length a record may claim.
const maxBlobLen = 1 << 40

// blobRef locates a message's body in its blob file: n bytes from off.
type blobRef struct{ off, n int64 }

// blobPath returns the path of message id's blob.
func (s *Spool) blobPath(id string) string { return filepath.Join(s.blobDir, id) }

// validBlobID reports whether id can name a file: letters and digits,
// as queue ids are.
func validBlobID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// Blob is a file in the spool that the body of one large message is
// written to as it arrives (CreateBlob), so that the message never needs
// to be in memory. Until PutMessage takes it, it has no name in the
// spool. It is not safe for concurrent use: one session writes it, then
// hands it to PutMessage, then closes it.
type Blob struct {
	s     *Spool
	id    string
	f     *fsutil.TempFile
	size  int64
	err   error // the first write error; every later Write returns it
	taken bool  // PutMessage named it: it belongs to the message now
}

// CreateBlob returns a new Blob for the message id (a queue id: letters
// and digits), created in the spool directory. Close it after
// PutMessage, or to discard it.
func (s *Spool) CreateBlob(id string) (*Blob, error) {
	if !validBlobID(id) {
		return nil, fmt.Errorf("queue: create blob: bad id %q", id)
	}
	f, err := fsutil.CreateTemp(s.blobDir, id, s.unnamed)
	if err != nil {
		return nil, fmt.Errorf("queue: create blob %s: %w", id, err)
	}
	return &Blob{s: s, id: id, f: f}, nil
}

// Write appends p to the blob. A failure (a full disk: ENOSPC, EDQUOT)
// sticks: every later Write fails with it.
func (b *Blob) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.f.Write(p)
	b.size += int64(n)
	if err != nil {
		b.err = fmt.Errorf("queue: write blob %s: %w", b.id, err)
		return n, b.err
	}
	return n, nil
}

// ReadAt reads the blob at off, as io.ReaderAt does.
func (b *Blob) ReadAt(p []byte, off int64) (int, error) { return b.f.ReadAt(p, off) }

// Size returns the bytes written so far.
func (b *Blob) Size() int64 { return b.size }

// Close closes the blob; one that no PutMessage took is removed.
func (b *Blob) Close() error {
	if b.taken {
		return b.f.Close()
	}
	return b.f.Discard()
}

// PutMessage stores env and msg durably, as Put does, and returns nil
// only once both are on stable storage. A body of at most
// Options.InlineMax bytes is copied into the segment with the record; a
// larger one gets a blob file: when msg.Body lies in a Blob that this
// spool made for env.ID, that file becomes the body as it is; otherwise
// the body is copied into a new blob first. Either way the blob is
// written, fsynced and named in the caller's goroutine, and only the
// small record goes through the group commit. PutMessage does not
// retain msg after it returns; the caller still closes its Blob.
func (s *Spool) PutMessage(ctx context.Context, env *Envelope, msg *smtp.Message) error {
	if err := checkEnvelope(env); err != nil {
		return err
	}
	if len(msg.Header) > maxDataLen {
		return fmt.Errorf("queue: put %s: header too large", env.ID)
	}
	body := msg.Body
	if body.Size() <= s.inlineMax {
		b, ok := body.Bytes()
		if !ok { // a small body left in a file: read it
			b = make([]byte, body.Size())
			if _, err := io.ReadFull(body.Reader(), b); err != nil {
				return fmt.Errorf("queue: put %s: read body: %w", env.ID, err)
			}
		}
		return s.put(ctx, &putReq{env: env, head: msg.Header, body: b})
	}
	if body.Size() > maxBlobLen {
		return fmt.Errorf("queue: put %s: message too large", env.ID)
	}
	ref, err := s.storeBlob(env.ID, body)
	if err != nil {
		return fmt.Errorf("queue: put %s: %w", env.ID, err)
	}
	return s.put(ctx, &putReq{env: env, head: msg.Header, blob: ref})
}

// storeBlob makes body the durable blob of message id: the Blob it lies
// in, or a copy. It returns after the file, its name and the blob
// directory are fsynced.
func (s *Spool) storeBlob(id string, body smtp.Body) (*blobRef, error) {
	if !validBlobID(id) {
		return nil, fmt.Errorf("blob: bad id %q", id)
	}
	f, off, inFile := body.File()
	b, own := f.(*Blob)
	if !inFile || !own || b.s != s || b.id != id || b.taken || b.err != nil || off+body.Size() > b.size {
		// Not ours to take: copy it into a blob of our own.
		nb, err := s.CreateBlob(id)
		if err != nil {
			return nil, err
		}
		defer nb.Close()
		if _, err := body.WriteTo(nb); err != nil {
			return nil, err
		}
		b, off = nb, 0
	}
	start := s.now()
	err := unix.Fdatasync(int(b.f.Fd()))
	s.fsyncs.Add(1)
	if err != nil {
		return nil, fmt.Errorf("blob: fdatasync: %w", err)
	}
	if err := b.f.Link(s.blobPath(id)); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("blob: %w", ErrDuplicate)
		}
		return nil, fmt.Errorf("blob: %w", err)
	}
	b.taken = true
	if err := s.blobSync.Sync(); err != nil {
		os.Remove(s.blobPath(id))
		return nil, fmt.Errorf("blob: sync directory: %w", err)
	}
	blobSeconds.Observe(s.now().Sub(start).Seconds())
	return &blobRef{off: off, n: body.Size()}, nil
}

// removeBlob removes message id's blob; a blob already gone is fine.
func (s *Spool) removeBlob(id string) {
	if err := os.Remove(s.blobPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Error("queue: remove blob", "id", id, "err", err)
	}
}

// openBlobDir creates Dir/blobs when needed and finds out whether blobs
// can be unnamed files there.
func (s *Spool) openBlobDir() error {
	if err := os.MkdirAll(s.blobDir, 0o700); err != nil {
		return err
	}
	s.unnamed = fsutil.CanLinkUnnamed(s.blobDir)
	return nil
}

// recoverBlobs, at Open, checks that every live message with a blob has
// it whole, dropping (and logging) those that do not, and removes every
// file in Dir/blobs that no live message needs: blobs of done messages,
// blobs whose record never became durable, temporary files.
func (s *Spool) recoverBlobs() error {
	for id, e := range s.index {
		if e.blob == nil || e.done {
			continue
		}
		fi, err := os.Stat(s.blobPath(id))
		if err == nil && fi.Size() >= e.blob.off+e.blob.n {
			continue
		}
		if err == nil {
			err = fmt.Errorf("blob is %d bytes, the record needs %d", fi.Size(), e.blob.off+e.blob.n)
		}
		s.log.Error("queue: message without its body dropped (never acknowledged, or the disk lost it)",
			"id", id, "blob", s.blobPath(id), "err", err)
		e.done = true
		e.seg.live--
	}
	for _, e := range s.index {
		e.blobGone = e.blob != nil && e.done // removed below
	}
	ents, err := os.ReadDir(s.blobDir)
	if err != nil {
		return err
	}
	removed := 0
	for _, de := range ents {
		name := de.Name()
		e := s.index[name]
		if e != nil && e.blob != nil && !e.done && !strings.HasSuffix(name, fsutil.TempSuffix) {
			continue
		}
		if err := os.Remove(filepath.Join(s.blobDir, name)); err != nil {
			return err
		}
		removed++
	}
	if removed > 0 {
		s.log.Info("queue: unneeded blobs removed", "files", removed)
	}
	return nil
}

// Message is a spooled message opened for reading (Spool.Open): the
// header section in memory, the body in memory or in its blob file.
// Close it when done.
type Message struct {
	smtp.Message
	f *os.File // the blob, nil when none
}

// Close closes the message's blob file, if any.
func (m *Message) Close() error {
	if m.f == nil {
		return nil
	}
	return m.f.Close()
}
