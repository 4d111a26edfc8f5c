// Package spool implements Postern's durable spool: every accepted
// message, and the delivery state of each of its recipients.
//
// The spool keeps every accepted message in append-only segment files
// under Dir/segments, written by one goroutine that commits in groups:
// every Put that arrives while the previous fsync runs is appended by the
// next single write and made durable by the next single fsync, and each
// Put returns only after the fsync that covers it (see DESIGN.md, "The
// spool, in one paragraph"). Per-recipient delivery state lives in a bbolt
// file, Dir/state.db, written only when delivery changes it: a recipient
// with no stored state is pending, so a crash between Put and the first
// state write loses nothing. A segment is deleted once every message in it
// is done and it is no longer the segment being appended to.
//
// A message whose body is larger than InlineMax (128 KiB) goes
// through neither the writer nor the segments: it is a file of its own
// under Dir/blobs, its record (envelope and header section) at its end,
// made durable (file, name, directory) in the caller's goroutine. A
// session streams a large message into such a file as it arrives
// (CreateFile), and PutMessage keeps that very file: the message is never
// in memory and never copied, and the single writer, which the small
// messages wait on, never spends time on 30 MB of someone else's data.
// See blob.go for the format, the order of the fsyncs and recovery.
//
// The spool knows nothing of delivery: the queue runner (internal/queue)
// reads messages with Open and records each attempt's outcome with
// MarkRecipientAsync (in memory at once, committed a few milliseconds
// later); MarkRecipientSync returns only after the commit. An operator's
// Delete, Release and RetryNow change states too, synchronously. Crash safety is tested here (crash_test.go: a child process
// killed while it puts and marks, every acknowledged message and state
// found after the restart).
package spool

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"postern/internal/fsutil"
	"postern/internal/smtp"
)

// Options configures a Spool.
type Options struct {
	// Dir is the spool directory; it is created (0700) when missing.
	Dir string
	// SegmentSize is the size past which the writer starts a new segment
	// file; 0 means 64 MiB.
	SegmentSize int64
	// Logger receives recovery and error events; nil means slog.Default().
	Logger *slog.Logger
	// Metrics counts into a set made by NewMetrics; nil counts into a
	// set registered nowhere.
	Metrics *Metrics
	// beforeSync, for tests, runs before each data fsync (to model a
	// slow disk: TestGroupCommit). Production never sets it, nor could
	// it, unexported.
	beforeSync func()
}

// Errors returned by the spool; they are wrapped, test with errors.Is.
var (
	// ErrClosed is returned by operations on a closed Spool.
	ErrClosed = errors.New("spool closed")
	// ErrDuplicate is returned by Put when the id is already spooled.
	ErrDuplicate = errors.New("duplicate message id")
	// ErrNotFound is returned for an id that is not in the spool.
	ErrNotFound = errors.New("no such message")
	// ErrNoRecipient is returned by MarkRecipientSync for an address that is
	// not a recipient of the message.
	ErrNoRecipient = errors.New("no such recipient")
	// ErrNotHeld is returned by Release for a message that is not held.
	ErrNotHeld = errors.New("message not held")
)

// Stats are counters since Open, for tests, benchmarks and operators.
type Stats struct {
	// Commits counts group commits (one data fsync each).
	Commits int64
	// Messages counts messages made durable by Put.
	Messages int64
	// Fsyncs counts fsync and fdatasync calls on segment files and the
	// segment directory.
	Fsyncs int64
}

// Item describes one live message, as List and Lookup return it.
type Item struct {
	// ID is the queue id.
	ID string
	// From is the reverse-path.
	From string
	// Recipients are the recipients with their states, in envelope order.
	Recipients []ItemRecipient
	// Size is the size of the message data in bytes.
	Size int64
	// ReceivedAt is when the message was received.
	ReceivedAt time.Time
	// Held is set while a recipient of the message is held for review
	// (StatusHeld); HoldReason then says why.
	Held       bool
	HoldReason string
}

// ItemRecipient is one recipient of an Item.
type ItemRecipient struct {
	// Addr is the forward-path.
	Addr string
	// State is its delivery state.
	State RecipientState
}

// segment is one segment file.
type segment struct {
	num  uint64
	path string
	f    *os.File // read handle; the writer also appends through it
	size int64    // bytes of whole, durable records
	live int      // messages in it not yet done
	ids  []string // every message in it, done or not
}

// entry is the index entry of one message.
type entry struct {
	seg     *segment // nil for a message in a blob (blob.go)
	off     int64    // offset of the record, in the segment or the blob
	envLen  int64
	dataLen int64    // the message, or its header section when blob is set
	blob    *blobRef // the body in Dir/blobs/ID; nil when in the record
	env     *smtp.Envelope
	states  []RecipientState
	done    bool
}

// Spool is the durable message store. Its methods are safe for
// concurrent use.
type Spool struct {
	dir      string
	segDir   string
	segMax   int64
	blobDir  string
	unnamed  bool // blobs are O_TMPFILEs until taken (blob.go)
	blobSync fsutil.DirSyncer
	log      *slog.Logger
	db       *bolt.DB
	hook     func() // Options.beforeSync
	m        *Metrics

	mu       sync.RWMutex
	index    map[string]*entry
	segs     map[uint64]*segment
	active   *segment
	lastSeg  uint64
	closed   bool
	held     int // live messages with a held recipient
	watchers map[int]func(id string)
	watchSeq int

	puts       sync.WaitGroup // Puts and state updates in flight
	reqs       chan *putReq
	writerDone chan struct{}
	stateReqs  chan stateReq
	stateDone  chan struct{}

	commits, messages, fsyncs atomic.Int64
}

// Open opens the spool in opts.Dir, creating it when needed, and recovers
// every message from its segments: a torn or corrupt record (never
// acknowledged) ends the scan of its segment and is logged. Delivery state
// comes from state.db; messages without stored state are pending. Open
// always starts a new segment for new messages.
func Open(opts Options) (*Spool, error) {
	s := &Spool{
		dir:        opts.Dir,
		segDir:     filepath.Join(opts.Dir, "segments"),
		segMax:     opts.SegmentSize,
		blobDir:    filepath.Join(opts.Dir, "blobs"),
		log:        opts.Logger,
		hook:       opts.beforeSync,
		m:          opts.Metrics,
		index:      make(map[string]*entry),
		segs:       make(map[uint64]*segment),
		watchers:   make(map[int]func(string)),
		reqs:       make(chan *putReq, maxBatchMessages),
		writerDone: make(chan struct{}),
		stateReqs:  make(chan stateReq, maxStateBatch),
		stateDone:  make(chan struct{}),
	}
	if s.segMax <= 0 {
		s.segMax = 64 << 20
	}
	s.blobSync = fsutil.DirSyncer{Dir: s.blobDir, Count: &s.fsyncs}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.m == nil {
		s.m = NewMetrics(nil)
	}
	if opts.Dir == "" {
		return nil, errors.New("spool: open: no directory")
	}
	_, statErr := os.Stat(opts.Dir)
	if err := os.MkdirAll(s.segDir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: open: %w", err)
	}
	if err := s.openBlobDir(); err != nil {
		return nil, fmt.Errorf("spool: open: %w", err)
	}
	// The spool and segments directories must be durable in their parents.
	dirs := []string{opts.Dir}
	if statErr != nil {
		dirs = append(dirs, filepath.Dir(filepath.Clean(opts.Dir)))
	}
	for _, d := range dirs {
		if err := fsutil.SyncDir(d); err != nil {
			return nil, fmt.Errorf("spool: open: %w", err)
		}
	}
	db, err := openState(filepath.Join(opts.Dir, "state.db"))
	if err != nil {
		return nil, fmt.Errorf("spool: open: state: %w", err)
	}
	s.db = db
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("spool: open: %w", err)
	}
	if err := s.newSegment(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("spool: open: %w", err)
	}
	go s.stateWriter()
	s.removeDoneSegments()
	go s.writer()
	return s, nil
}

// segName is the file name of segment num.
func segName(num uint64) string { return fmt.Sprintf("%012d.seg", num) }

// recover scans every segment into the index and attaches stored states.
func (s *Spool) recover() error {
	names, err := os.ReadDir(s.segDir)
	if err != nil {
		return err
	}
	var nums []uint64
	for _, de := range names {
		base, ok := strings.CutSuffix(de.Name(), ".seg")
		if !ok || len(base) != 12 {
			continue
		}
		n, err := strconv.ParseUint(base, 10, 64)
		if err != nil {
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for _, n := range nums {
		if err := s.scanSegment(n); err != nil {
			return err
		}
		s.lastSeg = n
	}
	if err := s.scanBlobs(); err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	stored, err := loadStates(s.db)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	var orphans []string
	for id, v := range stored {
		e, ok := s.index[id]
		if !ok {
			orphans = append(orphans, id)
			continue
		}
		st, err := decodeStates(v, e.env.Recipients)
		if err != nil {
			s.log.Error("queue: bad stored state, recipients treated as pending", "id", id, "err", err)
			continue
		}
		e.states = st
	}
	for id, e := range s.index {
		if !allFinal(e.states) {
			continue
		}
		e.done = true
		if e.seg != nil {
			e.seg.live--
			continue
		}
		// A done message in a blob: nothing will read it again.
		delete(s.index, id)
		s.removeBlob(id)
		orphans = append(orphans, id)
	}
	live := 0
	for _, e := range s.index {
		if !e.done {
			live++
			if e.held() {
				s.held++
			}
		}
	}
	s.m.Messages.Set(float64(live))
	s.m.Held.Set(float64(s.held))
	if err := deleteStates(s.db, orphans); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	s.log.Info("queue: spool recovered", "segments", len(nums), "messages", len(s.index), "live", live, "held", s.held)
	return nil
}

// scanSegment reads segment n record by record into the index.
func (s *Spool) scanSegment(n uint64) error {
	path := filepath.Join(s.segDir, segName(n))
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	seg := &segment{num: n, path: path, f: f}
	s.segs[n] = seg
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	end := fi.Size()
	var off int64
	var hdr [recordHeaderLen]byte
	var buf []byte
	for off < end {
		bad := func(reason error) {
			s.log.Warn("queue: torn or corrupt record ends segment scan",
				"segment", seg.path, "offset", off, "ignored_bytes", end-off, "err", reason)
		}
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			bad(err)
			break
		}
		rh, err := parseHeader(hdr[:])
		if err != nil {
			bad(err)
			break
		}
		total := recordHeaderLen + rh.envLen + rh.dataLen
		if off+total > end {
			bad(fmt.Errorf("%w: record runs past end of file", errCorrupt))
			break
		}
		buf = slices.Grow(buf[:0], int(total))[:total]
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			return err
		}
		if err := checkRecord(rh, buf); err != nil {
			bad(err)
			break
		}
		env, ref, err := decodeEnvelopeRef(buf[recordHeaderLen:recordHeaderLen+rh.envLen], rh.version)
		if err == nil && ref != nil {
			err = fmt.Errorf("%w: a blob's record in a segment", errCorrupt)
		}
		if err != nil {
			bad(err)
			break
		}
		if _, dup := s.index[env.ID]; dup {
			s.log.Error("queue: duplicate id in spool, later copy ignored", "id", env.ID, "segment", seg.path)
		} else {
			s.index[env.ID] = &entry{seg: seg, off: off, envLen: rh.envLen, dataLen: rh.dataLen,
				env: env, states: initialStates(env)}
			seg.ids = append(seg.ids, env.ID)
			seg.live++
		}
		off += total
	}
	seg.size = off
	return nil
}

// newSegment creates the next segment file, makes its name durable and
// makes it the active segment. Only Open and the writer call it.
func (s *Spool) newSegment() error {
	n := s.lastSeg + 1
	path := filepath.Join(s.segDir, segName(n))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("new segment: %w", err)
	}
	// The directory entry must be durable before any Put in this
	// segment is answered.
	if err := fsutil.SyncDir(s.segDir); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("new segment: %w", err)
	}
	s.fsyncs.Add(1)
	seg := &segment{num: n, path: path, f: f}
	s.mu.Lock()
	s.lastSeg = n
	s.segs[n] = seg
	s.active = seg
	s.mu.Unlock()
	return nil
}

// initialStates returns the states of a message's recipients before any
// is stored: all pending, or all held when env.Hold is set.
func initialStates(env *smtp.Envelope) []RecipientState {
	st := make([]RecipientState, len(env.Recipients))
	if env.Hold {
		for i := range st {
			st[i].Status = StatusHeld
		}
	}
	return st
}

// held reports whether a recipient of e is held.
func (e *entry) held() bool {
	for _, st := range e.states {
		if st.Status == StatusHeld {
			return true
		}
	}
	return false
}

func allFinal(st []RecipientState) bool {
	for _, s := range st {
		if !s.Status.Final() {
			return false
		}
	}
	return true
}

// Close waits for the Puts and state updates in flight, stops the
// writers and closes the segment files and the state store. Stop the
// Runner first. Operations after Close fail with
// ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("spool: close: %w", ErrClosed)
	}
	s.closed = true
	s.mu.Unlock()
	s.puts.Wait()
	close(s.reqs)
	<-s.writerDone
	close(s.stateReqs)
	<-s.stateDone
	if err := s.closeFiles(); err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}

func (s *Spool) closeFiles() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, seg := range s.segs {
		errs = append(errs, seg.f.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}

// Stats returns the spool's counters.
func (s *Spool) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Messages: s.messages.Load(), Fsyncs: s.fsyncs.Load()}
}
