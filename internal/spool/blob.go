package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"postern/internal/fsutil"
	"postern/internal/smtp"
)

// Large messages.
//
// A message whose body is larger than InlineMax goes through
// neither the writer nor the segments: it is a file of its own,
// Dir/blobs/ID (a blob), which holds the body and, at its end, the
// message's record:
//
//	offset  size  field
//	0       B     the message as it arrived (or only its body)
//	B       R     a record as in a segment (record.go), version 4 (5 with
//	              DSN parameters): the
//	              envelope with the blob reference (offset and length of
//	              the body in this file), and the header section as its
//	              message data
//	B+R     8     B, big endian
//	B+R+8   4     magic "PQB\x00"
//
// A session streams a large message into a Blob as it arrives
// (CreateFile), before anything is decided about it. The Blob is an
// unnamed file in Dir/blobs (O_TMPFILE; where the file system lacks it,
// ID.tmp), so that a crash while it is written leaves nothing behind.
// PutMessage then appends the record and the trailer to that very file,
// fdatasyncs it, links it as Dir/blobs/ID and fsyncs Dir/blobs (one fsync
// for the callers that arrive meanwhile): the message is durable, name
// included, and the session may answer 250. All of it runs in the
// caller's goroutine and the message is never copied. Copying it into a
// segment instead would hold the single writer, and every small message
// waiting on its group commit, for as long as it takes to write and
// fsync 30 MB of someone else's data.
//
// Open reads the trailer of every blob: one whose trailer or record does
// not check out was never complete, so never acknowledged, and is
// removed, as are temporary files. A blob is removed once its message is
// done and that state is committed. Segments only ever hold records of
// versions 1 to 3, which older releases read, and 5 for a message with
// DSN parameters, which they do not; an older release ignores
// Dir/blobs (a rollback leaves the large messages there, untouched, for
// the next upgrade).

// InlineMax is the largest body Put and PutMessage copy into the
// segment with its record; a larger one gets a blob file.
const InlineMax = 128 << 10

// maxBlobLen bounds the blob offset and length a record may claim.
const maxBlobLen = 1 << 40

// blobMagic ends a complete blob; blobTrailerLen is the trailer's size
// (the record's offset, then the magic).
const (
	blobMagic      = "PQB\x00"
	blobTrailerLen = 12 // 8 bytes of offset and the magic
)

// blobRef locates a message's body in its blob file: n bytes from off.
type blobRef struct{ off, n int64 }

// blobPath returns the path of message id's blob.
func (s *Spool) blobPath(id string) string { return filepath.Join(s.blobDir, id) }

// Blob is a file in the spool that one large message is written to as it
// arrives (CreateFile), so that the message never needs to be in memory.
// Until PutMessage takes it, it has no name in the spool. It is not safe
// for concurrent use: one session writes it, then hands it to PutMessage,
// then closes it.
type Blob struct {
	s     *Spool
	id    string
	f     *fsutil.TempFile
	size  int64
	err   error // the first write error; every later Write returns it
	taken bool  // PutMessage named it: it is the message's now
}

// CreateFile returns a new Blob for the message id (a queue id: letters
// and digits), created in the spool directory, for a session to stream
// a large message into as it arrives (smtpd.Spooler). Close it after
// PutMessage, or to discard it.
func (s *Spool) CreateFile(id string) (smtp.SpoolFile, error) { return s.createBlob(id) }

// createBlob is CreateFile.
func (s *Spool) createBlob(id string) (*Blob, error) {
	if !smtp.ValidID(id) {
		return nil, fmt.Errorf("spool: create blob: bad id %q", id)
	}
	f, err := fsutil.CreateTemp(s.blobDir, id, s.unnamed)
	if err != nil {
		return nil, fmt.Errorf("spool: create blob %s: %w", id, err)
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
		b.err = fmt.Errorf("spool: write blob %s: %w", b.id, err)
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
// InlineMax bytes is copied into a segment with the record (group
// commit). A larger one makes a blob: when msg.Body lies in a Blob that
// this spool made for env.ID, that file itself; otherwise a new one the
// body is copied into. The record goes at the blob's end, and the blob is
// fsynced and named in the caller's goroutine, without waiting for the
// writer. PutMessage does not retain msg after it returns; the caller
// still closes its Blob.
func (s *Spool) PutMessage(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error {
	if err := checkEnvelope(env); err != nil {
		return err
	}
	if len(msg.Header) > maxDataLen {
		return fmt.Errorf("spool: put %s: header too large", env.ID)
	}
	body := msg.Body
	if body.Size() <= InlineMax {
		b, ok := body.Bytes()
		if !ok { // a small body left in a file: read it
			b = make([]byte, body.Size())
			if _, err := io.ReadFull(body.Reader(), b); err != nil {
				return fmt.Errorf("spool: put %s: read body: %w", env.ID, err)
			}
		}
		return s.put(ctx, &putReq{env: env, head: msg.Header, body: b})
	}
	if err := s.putBlob(env, msg); err != nil {
		return fmt.Errorf("spool: put %s: %w", env.ID, err)
	}
	return nil
}

// putBlob stores a message with a large body as a blob (see PutMessage).
func (s *Spool) putBlob(env *smtp.Envelope, msg *smtp.Message) error {
	id := env.ID
	if !smtp.ValidID(id) || msg.Body.Size() > maxBlobLen {
		return fmt.Errorf("blob: bad id %q or size %d", id, msg.Body.Size())
	}
	done, err := s.begin(id)
	if err != nil {
		return err
	}
	defer done()
	s.mu.RLock()
	_, dup := s.index[id]
	s.mu.RUnlock()
	if dup {
		return ErrDuplicate
	}
	start := time.Now()
	b, off, fresh, err := s.blobFor(id, msg.Body)
	if err != nil {
		return err
	}
	if fresh {
		defer b.Close()
	}
	ref := &blobRef{off: off, n: msg.Body.Size()}
	e := &entry{off: b.size, dataLen: int64(len(msg.Header)), blob: ref, env: env.Clone(), states: initialStates(env)}
	rec := appendRecordParts(nil, env, msg.Header, nil, ref)
	e.envLen = int64(len(rec)) - recordHeaderLen - e.dataLen
	rec = binary.BigEndian.AppendUint64(rec, uint64(e.off))
	rec = append(rec, blobMagic...)
	if _, err := b.Write(rec); err != nil {
		return err
	}
	err = unix.Fdatasync(int(b.f.Fd()))
	s.fsyncs.Add(1)
	if err != nil {
		return fmt.Errorf("blob: fdatasync: %w", err)
	}
	if err := b.f.Link(s.blobPath(id)); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("blob: %w", ErrDuplicate)
		}
		return fmt.Errorf("blob: %w", err)
	}
	b.taken = true
	if err := s.blobSync.Sync(); err != nil {
		s.removeBlob(id)
		return fmt.Errorf("blob: sync directory: %w", err)
	}
	s.m.BlobSeconds.Observe(time.Now().Sub(start).Seconds())

	s.mu.Lock()
	if _, dup := s.index[id]; dup { // put meanwhile, in a segment
		s.mu.Unlock()
		s.removeBlob(id)
		return ErrDuplicate
	}
	s.index[id] = e
	if env.Hold {
		s.held++
		s.m.Held.Set(float64(s.held))
	}
	watchers := make([]func(string), 0, len(s.watchers))
	for _, w := range s.watchers {
		watchers = append(watchers, w)
	}
	s.mu.Unlock()
	s.messages.Add(1)
	s.m.Messages.Inc()
	for _, w := range watchers {
		w(id)
	}
	return nil
}

// blobFor returns the Blob to store body in for message id, and the
// offset of the body in it: the Blob the body lies in, when this spool
// made it for id and it is sound, or a fresh one the body is copied into,
// which the caller closes.
func (s *Spool) blobFor(id string, body smtp.Body) (b *Blob, off int64, fresh bool, err error) {
	f, off, inFile := body.File()
	if b, ok := f.(*Blob); inFile && ok && b.s == s && b.id == id && !b.taken && b.err == nil && off+body.Size() <= b.size {
		return b, off, false, nil
	}
	nb, err := s.createBlob(id)
	if err != nil {
		return nil, 0, false, err
	}
	if _, err := body.WriteTo(nb); err != nil {
		nb.Close()
		return nil, 0, false, err
	}
	return nb, 0, true, nil
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

// scanBlobs, at Open, puts the message of every complete blob into the
// index and removes every other file in Dir/blobs: temporary files, and
// blobs whose record or trailer does not check out (never complete,
// never acknowledged).
func (s *Spool) scanBlobs() error {
	ents, err := os.ReadDir(s.blobDir)
	if err != nil {
		return err
	}
	for _, de := range ents {
		name := de.Name()
		path := filepath.Join(s.blobDir, name)
		var e *entry
		err := fmt.Errorf("%w: not a blob name", errCorrupt)
		if smtp.ValidID(name) {
			e, err = readBlobRecord(path, name)
		}
		if err == nil {
			if _, dup := s.index[name]; dup {
				err = errors.New("a message of that id is in a segment")
			}
		}
		if err != nil {
			s.log.Warn("queue: incomplete blob removed (never acknowledged)", "file", path, "err", err)
			if err := os.Remove(path); err != nil {
				return err
			}
			continue
		}
		s.index[name] = e
	}
	return nil
}

// readBlobRecord reads and checks the trailer and the record of the blob
// of message id at path.
func readBlobRecord(path, id string) (*entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size < int64(blobTrailerLen+recordHeaderLen) {
		return nil, fmt.Errorf("%w: blob of %d bytes", errCorrupt, size)
	}
	var tr [blobTrailerLen]byte
	if _, err := f.ReadAt(tr[:], size-blobTrailerLen); err != nil {
		return nil, err
	}
	if string(tr[8:]) != blobMagic {
		return nil, fmt.Errorf("%w: no blob trailer", errCorrupt)
	}
	recOff := int64(binary.BigEndian.Uint64(tr[:8]))
	recEnd := size - blobTrailerLen
	if recOff < 0 || recOff > recEnd-recordHeaderLen || recEnd-recOff > maxEnvelopeLen+maxDataLen {
		return nil, fmt.Errorf("%w: record offset %d in a blob of %d bytes", errCorrupt, recOff, size)
	}
	rec := make([]byte, recEnd-recOff)
	if _, err := f.ReadAt(rec, recOff); err != nil {
		return nil, err
	}
	rh, err := parseHeader(rec)
	if err != nil {
		return nil, err
	}
	if recordHeaderLen+rh.envLen+rh.dataLen != int64(len(rec)) {
		return nil, fmt.Errorf("%w: record lengths", errCorrupt)
	}
	if err := checkRecord(rh, rec); err != nil {
		return nil, err
	}
	env, ref, err := decodeEnvelopeRef(rec[recordHeaderLen:recordHeaderLen+rh.envLen], rh.version)
	if err != nil {
		return nil, err
	}
	if ref == nil || env.ID != id || ref.off+ref.n > recOff {
		return nil, fmt.Errorf("%w: blob record for %q, body %+v", errCorrupt, env.ID, ref)
	}
	return &entry{off: recOff, envLen: rh.envLen, dataLen: rh.dataLen, blob: ref, env: env, states: initialStates(env)}, nil
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
