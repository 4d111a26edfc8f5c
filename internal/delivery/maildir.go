// Package delivery implements the local delivery of spooled messages: to
// mailboxes in Maildir format, or to a mailbox server over LMTP (RFC
// 2033), whose client side is smtp.Client, the core outbound delivery
// (delivery/remote) and the load generator share (see internal/smtp for
// why it is ours rather than emersion/go-smtp's).
package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"postern/internal/addrkey"
	"postern/internal/fsutil"
	"postern/internal/smtp"
)

// ErrBadMailbox is returned (wrapped) for a mailbox name that is not a
// safe "user@domain".
var ErrBadMailbox = errors.New("bad mailbox name")

// Maildir delivers messages into Maildir mailboxes laid out as
// Root/DOMAIN/USER/{tmp,new,cur}, creating directories (0700) as needed.
// A message whose first header field is QuarantineField goes into the
// Maildir++ folder Root/DOMAIN/USER/.Junk/ instead.
// Each delivery is written as an unnamed file in new/ (O_TMPFILE; where
// that is missing, in tmp/), fsynced, given its name in new/ (linked; or
// renamed from tmp/), and new/ is fsynced before Deliver returns;
// concurrent deliveries to one mailbox share the fsync of new/. A Maildir must not be copied after first use;
// its methods are safe for concurrent use.
type Maildir struct {
	// Root is the directory holding one directory per domain.
	Root string
	// DeliveredTo, when set, prepends a "Delivered-To: mailbox" header
	// field (RFC 9228) to each delivered copy.
	DeliveredTo bool
	// Now is the clock used for file names; nil means time.Now.
	Now func() time.Time

	counter  atomic.Uint64
	hostOnce sync.Once
	host     string
	pid      string

	mkdirMu  sync.Mutex // serializes mailbox creation
	mu       sync.Mutex
	syncers  map[string]*fsutil.DirSyncer
	dirSyncs atomic.Int64 // directory fsyncs done, for tests and benchmarks
	fsyncs   atomic.Int64 // file fsyncs done
	// noTmpfile is set once O_TMPFILE or linking one failed: from then
	// on messages go through tmp/ and a rename.
	noTmpfile atomic.Bool
	// ownDirSync, for benchmarks, gives each delivery its own new/ fsync.
	ownDirSync bool
}

// Deliver stores data as a new message in mailbox, "user@domain" as
// resolved by the caller; the path has the parts' addrkey keys. It
// refuses (ErrBadMailbox) names with "/", NUL, "..", or a part that is
// empty or starts with ".". from is the envelope sender ("" for the null
// reverse-path): the stored copy starts with "Return-Path: <from>"
// (RFC 5321 §4.4), the only Return-Path field it has (dropReturnPath);
// a sender with a control character is refused (ErrBadMailbox). It
// returns after the message is durable.
func (m *Maildir) Deliver(ctx context.Context, mailbox, from string, data []byte) error {
	return m.DeliverMessage(ctx, mailbox, from, &smtp.Message{Header: data})
}

// DeliverMessage is Deliver for a message whose body may be in a file:
// the body is copied from it as a stream (by copy_file_range(2) where
// the kernel can, from file to file), never held in memory.
func (m *Maildir) DeliverMessage(ctx context.Context, mailbox, from string, msg *smtp.Message) error {
	_, err := m.deliver(ctx, mailbox, from, msg)
	return err
}

// deliver is DeliverMessage, returning the path of the message file it
// made. On error no file of the message is left in new/: a message file
// linked there but not made durable (its close or new/'s fsync failed)
// is removed, so that whoever delivers the message again makes the one
// copy.
func (m *Maildir) deliver(ctx context.Context, mailbox, from string, msg *smtp.Message) (string, error) {
	user, domain, err := splitMailbox(mailbox)
	if err != nil {
		return "", fmt.Errorf("delivery: maildir %q: %w", mailbox, err)
	}
	if hasCtl(from) {
		return "", fmt.Errorf("delivery: maildir %q: sender %q: %w", mailbox, from, ErrBadMailbox)
	}
	// Only the header section can hold a Return-Path field: the body is
	// neither read nor copied for it.
	if hdr := dropReturnPath(msg.Header); len(hdr) != len(msg.Header) {
		msg = &smtp.Message{Header: hdr, Body: msg.Body}
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("delivery: maildir %q: %w", mailbox, err)
	}
	box := filepath.Join(m.Root, domain, user)
	folder := ""
	if Quarantined(msg.Header) {
		folder = junkFolder
	}
	if folder != "" {
		box = filepath.Join(box, folder)
	}
	newDir := filepath.Join(box, "new")
	header := returnPathField(from)
	if m.DeliveredTo {
		// RFC 9228 §4: Delivered-To: addr-spec, the address delivered to.
		header = append(header, "Delivered-To: "+user+"@"+domain+"\r\n"...)
	}
	size := int64(len(header)) + msg.Size()
	name := m.uniqueName(size)
	newPath := filepath.Join(newDir, name)
	err = m.write(box, folder, newDir, name, newPath, header, msg)
	if err != nil {
		// The file may be linked already (its close failed): the name
		// is this delivery's own.
		m.takeBack(newPath)
		return "", fmt.Errorf("delivery: maildir %q: %w", mailbox, err)
	}
	if m.ownDirSync {
		err = fsutil.SyncDir(newDir)
		m.dirSyncs.Add(1)
	} else {
		err = m.syncer(newDir).Sync()
	}
	if err != nil {
		m.takeBack(newPath)
		return "", fmt.Errorf("delivery: maildir %q: sync new/: %w", mailbox, err)
	}
	return newPath, nil
}

// takeBack removes a message file from new/ that its delivery does not
// stand by, best effort (a file that was never linked is not there), and
// syncs new/ so that the removal is durable if the link was.
func (m *Maildir) takeBack(path string) {
	if err := os.Remove(path); err == nil {
		fsutil.SyncDir(filepath.Dir(path))
	}
}

// write makes the message file newDir/name, complete and fsynced, and
// creates the mailbox (and its folder) when it is missing. The path in
// tmp/ is made only when a message goes that way.
//
// The file is written as an unnamed file in new/ (O_TMPFILE) and linked
// under its name once it is complete and durable: a reader of new/ never
// sees a partial file, as with the Maildir specification's tmp/ and
// rename, with one directory operation instead of two and nothing to
// clean up in tmp/ after a crash. Where the file system has no O_TMPFILE
// or the file cannot be linked (no /proc, and a kernel before 6.10
// without CAP_DAC_READ_SEARCH), the message goes through tmp/ and a
// rename, as the specification describes.
func (m *Maildir) write(box, folder, newDir, name, newPath string, header []byte, msg *smtp.Message) error {
	created := false
	for {
		var err error
		if m.noTmpfile.Load() {
			err = m.writeViaTmp(filepath.Join(box, "tmp", name), newPath, header, msg)
		} else {
			err = m.writeTmpfile(box, name, newPath, header, msg)
		}
		if !errors.Is(err, os.ErrNotExist) || created {
			return err
		}
		// The mailbox does not exist yet: make it, then try again.
		created = true
		if folder != "" {
			// A Maildir++ folder lives inside the mailbox's Maildir.
			if err := m.makeMaildir(filepath.Dir(box), false); err != nil {
				return err
			}
		}
		if err := m.makeMaildir(box, folder != ""); err != nil {
			return err
		}
	}
}

// writeTmpfile writes the message as an O_TMPFILE in the new/ of box and
// links it as newPath (box/new/name). When the file system or the
// process cannot do that, it turns the fallback on for good and writes
// the message the other way, through box/tmp/name.
func (m *Maildir) writeTmpfile(box, name, newPath string, header []byte, msg *smtp.Message) error {
	newDir := filepath.Dir(newPath)
	fd, err := unix.Open(newDir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	switch err {
	case nil:
	case unix.EOPNOTSUPP, unix.EISDIR, unix.EINVAL:
		// A kernel or file system without O_TMPFILE.
		m.noTmpfile.Store(true)
		return m.writeViaTmp(filepath.Join(box, "tmp", name), newPath, header, msg)
	default:
		return &os.PathError{Op: "open", Path: newDir, Err: err}
	}
	// Plain system calls on the fd: an os.File would cost an fcntl and
	// a finalizer for a file written once.
	// One writev(2) for the fields, the header and a body in memory:
	// one system call a message instead of three.
	if b, ok := msg.Body.Bytes(); ok {
		err = writevFull(fd, [][]byte{header, msg.Header, b})
	} else if err = writevFull(fd, [][]byte{header, msg.Header}); err == nil {
		err = writeBody(fd, msg.Body)
	}
	if err == nil {
		err = unix.Fsync(fd)
	}
	m.fsyncs.Add(1)
	if err != nil {
		unix.Close(fd)
		return &os.PathError{Op: "write", Path: newPath, Err: err}
	}
	err = linkTmpfile(fd, newPath)
	if cannotLink(err) {
		unix.Close(fd)
		m.noTmpfile.Store(true)
		return m.writeViaTmp(filepath.Join(box, "tmp", name), newPath, header, msg)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = &os.PathError{Op: "close", Path: newPath, Err: cerr}
	}
	return err
}

// writevFull writes all of bufs to fd, in order, with writev(2).
func writevFull(fd int, bufs [][]byte) error {
	for len(bufs) > 0 {
		n, err := unix.Writev(fd, bufs)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		bufs = advance(bufs, n)
	}
	return nil
}

// advance drops the first n bytes from bufs, which a short write wrote:
// whole buffers, then the start of one; and the empty buffers left in
// front.
func advance(bufs [][]byte, n int) [][]byte {
	for n > 0 && len(bufs) > 0 {
		if n < len(bufs[0]) {
			bufs[0] = bufs[0][n:]
			break
		}
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	for len(bufs) > 0 && len(bufs[0]) == 0 {
		bufs = bufs[1:]
	}
	return bufs
}

// writeFull writes all of b to fd.
func writeFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// linkTmpfile gives the O_TMPFILE fd the name path (fsutil.LinkUnnamed).
func linkTmpfile(fd int, path string) error { return fsutil.LinkUnnamed(fd, path) }

// cannotLink reports whether err, from linkTmpfile, means this process
// cannot link O_TMPFILE files at all (no /proc, no capability, a file
// system that refuses), rather than a failure of this one delivery
// (ENOSPC, EDQUOT, EIO: returned, and the delivery is retried).
func cannotLink(err error) bool {
	if err == nil {
		return false // and no allocation for errors.As's target
	}
	var le *os.LinkError
	if !errors.As(err, &le) {
		return false
	}
	switch le.Err {
	case unix.ENOENT, unix.EPERM, unix.EACCES, unix.EINVAL, unix.EOPNOTSUPP, unix.EXDEV:
		return true
	}
	return false
}

// writeViaTmp writes the message to tmpPath, fsyncs it and renames it to
// newPath.
func (m *Maildir) writeViaTmp(tmpPath, newPath string, header []byte, msg *smtp.Message) error {
	f, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = writeSync(f, header, msg)
	m.fsyncs.Add(1)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// unix.Rename, not os.Rename: os.Rename first stats the target
		// to refuse a directory, a system call for nothing here.
		if err = unix.Rename(tmpPath, newPath); err != nil {
			err = &os.LinkError{Op: "rename", Old: tmpPath, New: newPath, Err: err}
		}
	}
	if err != nil {
		os.Remove(tmpPath)
	}
	return err
}

func writeSync(f *os.File, header []byte, msg *smtp.Message) error {
	if len(header) > 0 {
		if _, err := f.Write(header); err != nil {
			return err
		}
	}
	if _, err := f.Write(msg.Header); err != nil {
		return err
	}
	if err := writeBody(int(f.Fd()), msg.Body); err != nil {
		return err
	}
	return f.Sync()
}

// writeBody writes body to fd: from memory at once; from a file with
// copy_file_range(2), which copies in the kernel and moves neither
// file's offset, or where the kernel cannot (another file system, an
// old kernel), through a 64 KiB buffer with pread.
func writeBody(fd int, body smtp.Body) error {
	if b, ok := body.Bytes(); ok {
		return writeFull(fd, b)
	}
	f, off, _ := body.File()
	left := body.Size()
	if src, ok := f.(*os.File); ok {
		for left > 0 {
			n, err := unix.CopyFileRange(int(src.Fd()), &off, fd, nil, int(min(left, 1<<30)), 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n == 0 {
				if err == nil || err == unix.EXDEV || err == unix.ENOSYS || err == unix.EINVAL || err == unix.EOPNOTSUPP {
					break // read and write what is left
				}
				return err
			}
			left -= int64(n)
		}
		if left == 0 {
			return nil
		}
	}
	buf := make([]byte, min(left, 64<<10))
	for left > 0 {
		n, err := f.ReadAt(buf[:min(left, int64(len(buf)))], off)
		if n > 0 {
			if werr := writeFull(fd, buf[:n]); werr != nil {
				return werr
			}
			off += int64(n)
			left -= int64(n)
		}
		if err != nil && left > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// splitMailbox checks mailbox and returns its parts as their addrkey
// keys: the local part in NFC with its ASCII letters lower-cased, the
// domain as an A-label. (strings.ToLower would give two users, Élise and
// élise, one mailbox.)
func splitMailbox(mailbox string) (user, domain string, err error) {
	i := strings.LastIndexByte(mailbox, '@')
	if i < 0 {
		return "", "", fmt.Errorf("%w: no @", ErrBadMailbox)
	}
	user = addrkey.Local(mailbox[:i])
	if domain, err = addrkey.Domain(mailbox[i+1:]); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrBadMailbox, err)
	}
	for _, p := range []string{user, domain} {
		switch {
		case p == "":
			return "", "", fmt.Errorf("%w: empty part", ErrBadMailbox)
		case p[0] == '.':
			return "", "", fmt.Errorf("%w: part starts with a dot", ErrBadMailbox)
		case strings.ContainsAny(p, "/\\\x00"):
			return "", "", fmt.Errorf("%w: slash or NUL", ErrBadMailbox)
		case strings.Contains(p, ".."):
			return "", "", fmt.Errorf("%w: \"..\"", ErrBadMailbox)
		}
	}
	return user, domain, nil
}

// makeMaildir creates box/{new,cur,tmp} and makes them durable: each
// new directory is fsynced into its parent. Creations are serialized, and
// tmp/ comes last, so a delivery that finds tmp/ also finds new/, durable.
//
// A Maildir++ folder (isFolder) also gets its empty "maildirfolder" file,
// before tmp/.
func (m *Maildir) makeMaildir(box string, isFolder bool) error {
	m.mkdirMu.Lock()
	defer m.mkdirMu.Unlock()
	for _, sub := range []string{"new", "cur", "tmp"} {
		if sub == "tmp" && isFolder {
			if err := touchDurable(filepath.Join(box, "maildirfolder")); err != nil {
				return err
			}
		}
		if err := mkdirDurable(filepath.Join(box, sub)); err != nil {
			return err
		}
	}
	return nil
}

// touchDurable creates the empty file path when it does not exist and
// fsyncs its directory.
func touchDurable(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}

// QuarantineField is the header field that mail authentication puts on
// top of a message that DMARC quarantines (mailauth.QuarantineField).
const QuarantineField = "X-Postern-Quarantine"

// junkFolder is the Maildir++ folder quarantined messages go to.
const junkFolder = ".Junk"

// Quarantined reports whether the first header field of data is
// QuarantineField: such a message is delivered into the mailbox's Junk
// folder (Maildir++ ".Junk"). Only the first field counts: the mx filter
// removes incoming copies and puts its own on top.
func Quarantined(data []byte) bool {
	n := len(QuarantineField)
	return len(data) > n && data[n] == ':' && strings.EqualFold(string(data[:n]), QuarantineField)
}

// mkdirDurable creates dir and its missing parents (0700) and fsyncs the
// parent of each directory it created.
func mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return err
	}
	return fsutil.SyncDir(parent)
}

// uniqueName returns a Maildir file name, as the Maildir specification
// (cr.yp.to/proto/maildir.html) and its Courier/Dovecot extensions
// describe: SECONDS.MmicrosPpidQcounter.HOST,S=size.
func (m *Maildir) uniqueName(size int64) string {
	m.hostOnce.Do(func() {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		// The specification replaces "/" and ":" in the host name.
		h = strings.ReplaceAll(h, "/", `\057`)
		h = strings.ReplaceAll(h, ":", `\072`)
		m.host = h
		m.pid = strconv.Itoa(os.Getpid())
	})
	now := time.Now()
	if m.Now != nil {
		now = m.Now()
	}
	var b strings.Builder
	b.Grow(64)
	b.WriteString(strconv.FormatInt(now.Unix(), 10))
	b.WriteString(".M")
	b.WriteString(strconv.Itoa(now.Nanosecond() / 1000))
	b.WriteString("P")
	b.WriteString(m.pid)
	b.WriteString("Q")
	b.WriteString(strconv.FormatUint(m.counter.Add(1), 10))
	b.WriteString(".")
	b.WriteString(m.host)
	b.WriteString(",S=")
	b.WriteString(strconv.FormatInt(size, 10))
	return b.String()
}

// syncer returns the directory syncer of dir, creating it when needed:
// concurrent deliveries to one mailbox share the fsyncs of its new/.
func (m *Maildir) syncer(dir string) *fsutil.DirSyncer {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.syncers == nil {
		m.syncers = make(map[string]*fsutil.DirSyncer)
	}
	s := m.syncers[dir]
	if s == nil {
		s = &fsutil.DirSyncer{Dir: dir, Count: &m.dirSyncs}
		m.syncers[dir] = s
	}
	return s
}
