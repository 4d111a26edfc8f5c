package admin

// The reload API (`postern reload`), what SIGHUP does:
//
//	POST /reload    reload the certificates and the users: {"reloaded": true} (200);
//	                what failed is kept as it was: {"error": "..."} (500)

import (
	"context"
	"fmt"
	"net/http"
)

// consoleRoutes adds the reload API and the status page (status.go,
// detail.go) to mux.
func (s *Server) consoleRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /reload", s.reload)
	mux.HandleFunc("GET /{$}", s.status)
	mux.HandleFunc("GET /message/{id}", s.messagePage) // detail.go
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if s.Reload == nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{"reload is not available on this server"})
		return
	}
	s.log.Info("admin: reload")
	if err := s.Reload(); err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Reloaded bool `json:"reloaded"`
	}{true})
}

// Reload asks the server to reload its certificates and users, as
// SIGHUP does. The error says what was kept, and why.
func (c *Client) Reload(ctx context.Context) error {
	if err := c.do(ctx, http.MethodPost, "/reload", nil); err != nil {
		return fmt.Errorf("admin: reload: %w", err)
	}
	return nil
}
