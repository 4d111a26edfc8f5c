package admin

// The reload API (`postern reload`), what SIGHUP does:
//
//	POST /reload    read the configuration file again and apply what
//	                can change live, reload the certificates and the
//	                users: the ReloadReport (200); when something was
//	                refused or kept, the report with "error" (500)

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ReloadReport is what a reload did.
type ReloadReport struct {
	// Config is the configuration file read ("" for the embedded
	// default).
	Config string `json:"config"`
	// Changed are the keys whose new values apply now, to the sessions
	// and deliveries that start from now on.
	Changed []ReloadChange `json:"changed,omitempty"`
	// NeedsRestart are the keys that changed but cannot change while
	// the server runs: not applied; `postern restart` applies them.
	NeedsRestart []ReloadChange `json:"needs_restart,omitempty"`
	// Reloaded names what was read again besides the configuration:
	// "certificates", "users".
	Reloaded []string `json:"reloaded,omitempty"`
	// Errors say what was refused or kept, and why: the configuration
	// file refused whole (the running one serves on), a certificate or
	// the users kept. A reload with errors failed.
	Errors []string `json:"errors,omitempty"`
}

// ReloadChange is a key whose value changed, with its old and new
// values as `postern config` prints them (secrets never appear).
type ReloadChange struct {
	Key string `json:"key"`
	Old string `json:"old"`
	New string `json:"new"`
}

// String is "key: old → new".
func (c ReloadChange) String() string { return c.Key + ": " + c.Old + " → " + c.New }

// reloadBody is the answer of POST /reload: the report, with the
// errors joined in "error" when it failed.
type reloadBody struct {
	ReloadReport
	Error string `json:"error,omitempty"`
}

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
	rep := s.Reload()
	if len(rep.Errors) > 0 {
		writeJSON(w, http.StatusInternalServerError, reloadBody{rep, strings.Join(rep.Errors, "; ")})
		return
	}
	writeJSON(w, http.StatusOK, reloadBody{ReloadReport: rep})
}

// Reload asks the server to read its configuration again and apply it,
// and to reload its certificates and users, as SIGHUP does; it returns
// the server's report. When the report has errors, the error is a
// *ServerError saying what was refused or kept, and why.
func (c *Client) Reload(ctx context.Context) (ReloadReport, error) {
	status, body, err := c.send(ctx, http.MethodPost, "/reload", nil, 30*time.Second)
	if err != nil {
		return ReloadReport{}, fmt.Errorf("admin: reload: %w", err)
	}
	var b reloadBody
	if err := json.Unmarshal(body, &b); err != nil {
		return ReloadReport{}, fmt.Errorf("admin: reload: server: %d %s", status, http.StatusText(status))
	}
	if status >= 300 {
		if b.Error == "" {
			b.Error = http.StatusText(status)
		}
		return b.ReloadReport, fmt.Errorf("admin: reload: %w", &ServerError{Msg: b.Error})
	}
	return b.ReloadReport, nil
}
