package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// HTTPHandler returns the admin API and the status page for the admin
// HTTP address: every endpoint of the socket behind RequireToken, except
// local submission (POST /submit), which is for local programs only and
// answers 403 there.
func (s *Server) HTTPHandler(token string) http.Handler {
	s.init()
	api := s.hs.Handler
	return RequireToken(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/submit" {
			writeJSON(w, http.StatusForbidden, errorBody{"local submission is on the admin socket only"})
			return
		}
		api.ServeHTTP(w, r)
	}))
}

// ListenGroup is Listen, with the socket then given to group gid and
// made mode 0660: root, the server's user and the group's members may
// use it. (They also need to reach it: the directory must let the
// group search it.)
func ListenGroup(path string, gid int) (net.Listener, error) {
	l, err := Listen(path)
	if err != nil {
		return nil, err
	}
	if err := os.Chown(path, -1, gid); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	return l, nil
}

// RequireToken returns a handler that passes to h only the requests that
// carry token, for the admin API over HTTP:
//
//   - every endpoint takes "Authorization: Bearer TOKEN";
//   - the status page (GET / and its detail views, GET /message/{id}),
//     which changes nothing, also takes HTTP basic authentication with
//     the token as the password (any user name), so that a browser can
//     show it.
//
// Basic authentication is refused on every other endpoint: a browser
// sends remembered basic credentials with any request, even one a
// hostile page makes it send, and those must not reach an endpoint that
// changes state. Other requests get 401. The token is compared in
// constant time.
func RequireToken(token string, h http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	ok := func(got string) bool {
		g := sha256.Sum256([]byte(got))
		return got != "" && subtle.ConstantTimeCompare(g[:], want[:]) == 1
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page := (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
			(r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/message/"))
		auth := r.Header.Get("Authorization")
		scheme, cred, _ := strings.Cut(auth, " ")
		switch {
		case strings.EqualFold(scheme, "Bearer") && ok(strings.TrimSpace(cred)):
			h.ServeHTTP(w, r)
			return
		case page:
			if _, pw, isBasic := r.BasicAuth(); isBasic && ok(pw) {
				h.ServeHTTP(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="postern admin", charset="UTF-8"`)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="postern admin"`)
		}
		writeJSON(w, http.StatusUnauthorized, errorBody{"a valid admin token is required"})
	})
}
