package privs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"postern/internal/fsutil"
)

// Setup is what Prepare needs: the configured user and group (both ""
// to serve as the starting user), the data directory, and Bind, which
// binds the listening sockets while the process may still bind
// privileged ports.
type Setup struct {
	User, Group string
	DataDir     string
	Bind        func() error // called only as root with User set
	Logger      *slog.Logger
}

// Prepare makes the process ready to serve as s.User. Run as root with
// a user set, it binds the sockets (s.Bind), creates the data
// directory for that user when missing, and switches to the user and
// group; run as that user, it only checks that it is; run as root
// without a user, it warns. Then it creates the data directory when
// missing and checks its owner and mode (fsutil.CheckDataDir), so every
// file Postern creates belongs to the user.
func Prepare(s Setup) error {
	root := os.Geteuid() == 0
	switch {
	case s.User == "" && root:
		s.Logger.Warn("running as root: set user (for example user = \"postern\") to serve as an unprivileged user")
	case s.User != "":
		id, err := Lookup(s.User, s.Group)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		if !root {
			if os.Geteuid() != id.UID {
				return fmt.Errorf("serve: user = %q (uid %d), but started as uid %d: start as root, or as that user", s.User, id.UID, os.Geteuid())
			}
			break
		}
		if err := s.Bind(); err != nil {
			return err
		}
		if _, err := os.Stat(s.DataDir); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
				return fmt.Errorf("serve: data directory: %w", err)
			}
			if err := os.Chown(s.DataDir, id.UID, id.GID); err != nil {
				return fmt.Errorf("serve: data directory: %w", err)
			}
		}
		if err := Drop(id); err != nil {
			return err
		}
		s.Logger.Info("privileges dropped", "user", s.User, "uid", id.UID, "gid", id.GID)
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return fmt.Errorf("serve: data directory: %w", err)
	}
	if err := fsutil.CheckDataDir(s.DataDir, s.User, s.Group, os.Geteuid()); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
