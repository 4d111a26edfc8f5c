package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"postern/internal/spool"
)

// The release API (`postern queue release ID`):
//
//	POST /queue/{id}/release  deliver a message held for review now (204)
//
// A message is held when its sender went past a send limit whose policy
// is to hold ([send_limits] over_limit = "hold"). Releasing it makes its
// held recipients pending, durably (it stays released after a restart);
// it is then delivered, retried and expired like any message. It answers
// 404 for a message not in the queue and 409 for one that is not held.
// To drop a held message instead, DELETE /queue/{id}.

// ErrNotHeld means the message is in the queue but not held.
var ErrNotHeld = errors.New("message not held")

func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := s.Runner.Release(id)
	if errors.Is(err, spool.ErrNotHeld) {
		writeJSON(w, http.StatusConflict, errorBody{"message " + id + " is not held"})
		return
	}
	if err != nil {
		s.fail(w, id, err)
		return
	}
	s.log.Info("admin: release", "id", id)
	w.WriteHeader(http.StatusNoContent)
}

// Release makes message id, held for review, deliverable now. It fails
// wrapping ErrNotHeld when the message is not held.
func (c *Client) Release(ctx context.Context, id string) error {
	if err := c.do(ctx, http.MethodPost, "/queue/"+url.PathEscape(id)+"/release", nil); err != nil {
		return fmt.Errorf("admin: release %s: %w", id, err)
	}
	return nil
}
