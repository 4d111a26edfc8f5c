package fsutil

import (
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// SyncDir fsyncs the directory dir, so that the names created in it or
// removed from it survive a crash. It uses plain system calls: an
// os.File would cost an fcntl and a finalizer for one fsync.
func SyncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	err = unix.Fsync(fd)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}

// DirSyncer shares the fsyncs of one directory between concurrent
// callers: a caller is covered by the first fsync that starts after it
// arrives; while one fsync runs, everyone arriving waits for the next
// one, which a single caller runs for all of them. Set Dir before the
// first Sync; a DirSyncer must not be copied after first use.
type DirSyncer struct {
	// Dir is the directory.
	Dir string
	// Count, when not nil, is incremented by each fsync run.
	Count *atomic.Int64

	mu        sync.Mutex
	cond      *sync.Cond
	running   bool
	started   uint64 // fsyncs started
	completed uint64 // the last fsync finished
	err       error  // its outcome
}

// Sync returns once an fsync of Dir that started after the call has
// finished, with its error.
func (s *DirSyncer) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cond == nil {
		s.cond = sync.NewCond(&s.mu)
	}
	need := s.started + 1
	for {
		if s.completed >= need {
			return s.err
		}
		if !s.running {
			s.running = true
			s.started++
			gen := s.started
			s.mu.Unlock()
			err := SyncDir(s.Dir)
			if s.Count != nil {
				s.Count.Add(1)
			}
			s.mu.Lock()
			s.running = false
			s.completed, s.err = gen, err
			s.cond.Broadcast()
			continue
		}
		s.cond.Wait()
	}
}
