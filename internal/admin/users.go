package admin

// The users API, which `postern user add|passwd|delete` calls after it
// changed the users file, so that the change holds for the next login:
//
//	POST /users/reload   read the users again: 204; {"error": "..."} (500)
//	                     when the file does not load (the old users stay)

import (
	"context"
	"fmt"
	"net/http"
)

func (s *Server) reloadUsers(w http.ResponseWriter, r *http.Request) {
	if s.ReloadUsers == nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{"reloading the users is not available on this server"})
		return
	}
	if err := s.ReloadUsers(); err != nil {
		s.log.Error("admin: users reload failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{err.Error()})
		return
	}
	s.log.Info("admin: users reloaded")
	w.WriteHeader(http.StatusNoContent)
}

// ReloadUsers asks the server to read its users again, and returns once
// it has.
func (c *Client) ReloadUsers(ctx context.Context) error {
	if err := c.do(ctx, http.MethodPost, "/users/reload", nil); err != nil {
		return fmt.Errorf("admin: reload users: %w", err)
	}
	return nil
}
