package tlsconf

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long Watch waits after the last change before
// it reloads, when its debounce is zero.
const DefaultDebounce = 500 * time.Millisecond

// Watch watches the directories of files (not the files: editors,
// certbot and Kubernetes replace them by rename or symlink swap) and
// calls reload once changes to any of files, or to a ".."-prefixed name
// (a Kubernetes secret's symlink swap), have stopped for debounce. It
// returns when ctx ends, or at once with an error when a directory cannot
// be watched.
func Watch(ctx context.Context, files []string, debounce time.Duration, reload func()) error {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("tlsconf: watch: %w", err)
	}
	names := map[string]bool{}
	dirs := map[string]bool{}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			w.Close()
			return fmt.Errorf("tlsconf: watch %s: %w", f, err)
		}
		names[abs] = true
		d := filepath.Dir(abs)
		if !dirs[d] {
			dirs[d] = true
			if err := w.Add(d); err != nil {
				w.Close()
				return fmt.Errorf("tlsconf: watch %s: %w", d, err)
			}
		}
	}
	go func() {
		defer w.Close()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Op == fsnotify.Chmod {
					continue
				}
				if names[ev.Name] || strings.HasPrefix(filepath.Base(ev.Name), "..") {
					timer.Reset(debounce)
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
				// An overflow may hide a change: reload to be sure.
				timer.Reset(debounce)
			case <-timer.C:
				reload()
			}
		}
	}()
	return nil
}
