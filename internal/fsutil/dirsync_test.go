package fsutil

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

func TestDirSyncerCoversLateArrivals(t *testing.T) {
	// Every caller must be covered by an fsync that started after it
	// arrived: with one caller at a time each gets its own fsync.
	dir := t.TempDir()
	var count atomic.Int64
	s := &DirSyncer{Dir: dir, Count: &count}
	for range 5 {
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if count.Load() != 5 {
		t.Errorf("%d fsyncs for 5 sequential callers, want 5", count.Load())
	}
	s2 := &DirSyncer{Dir: filepath.Join(dir, "missing")}
	if err := s2.Sync(); err == nil {
		t.Error("sync of a missing directory succeeded")
	}
}

// Concurrent callers share fsyncs: never more fsyncs than callers, and
// every one of them returns.
func TestDirSyncerShares(t *testing.T) {
	var count atomic.Int64
	s := &DirSyncer{Dir: t.TempDir(), Count: &count}
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if err := s.Sync(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := count.Load(); n < 1 || n > 64 {
		t.Errorf("%d fsyncs for 64 callers", n)
	}
}
