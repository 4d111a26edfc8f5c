// Package admin implements Postern's local administration API: HTTP with
// JSON bodies over a unix socket in the data directory (DATA/admin.sock,
// mode 0600), which only the server's own user can reach. The server
// side is Server; Client is what the `postern queue` commands use.
//
// The API:
//
//	GET    /queue             the live messages: {"messages": [Message...]};
//	                          ?from=&to=&domain=&state= filter them (Filter)
//	GET    /queue/{id}        one message: MessageDetail
//	GET    /queue/{id}/message  the message as stored, streamed; with
//	                          ?header=1 its header section (cat.go)
//	POST   /queue/{id}/retry  make its deferred recipients due now (204)
//	DELETE /queue/{id}        stop delivering it, without a bounce (204)
//	POST   /queue/{id}/release  deliver a message held for review (204;
//	                            409 when it is not held); see release.go
//	POST   /queue/delete|hold|release|retry  the same, and a hold, by id,
//	                          by filter or for all (change.go)
//
// Errors are JSON {"error": "..."} with status 404 for an id that is not
// in the queue, 400 for a bad request (a bad filter) and 500 otherwise. The ban API
// (`postern ban`) is described in bans.go, local submission (`postern
// sendmail`) in submit.go, reload (`postern reload`) in reload.go, the
// status page (GET /) in status.go. Over HTTP (RequireToken) every
// endpoint wants the admin token.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/spool"
)

// Spool is what the admin API needs of the queue's spool; *spool.Spool
// implements it.
type Spool interface {
	// List returns the live messages, by arrival.
	List() []spool.Item
	// Lookup returns one message, live or done, while the spool holds it;
	// an error wrapping spool.ErrNotFound otherwise.
	Lookup(id string) (spool.Item, error)
	// Header returns the envelope and the header section of a message.
	Header(id string) (*smtp.Envelope, []byte, error)
	// Open returns the envelope and the message as stored, its body
	// read from the spool as a stream; close the Message.
	Open(id string) (*smtp.Envelope, *spool.Message, error)
	// Delete marks every recipient not yet done as removed.
	Delete(id string) error
}

// Runner is what the admin API needs of the queue runner; *queue.Runner
// implements it.
type Runner interface {
	// Retry makes the deferred recipients of a live message due now; it
	// fails wrapping spool.ErrNotFound for a message not in the queue.
	Retry(id string) error
	// Release makes the held recipients of a live message pending and
	// delivers them; it fails wrapping spool.ErrNotFound for a message
	// not in the queue and spool.ErrNotHeld for one not held.
	Release(id string) error
	// Change makes an operator's change to the recipients sel picks in
	// the live messages of ids (spool.Spool.Change), and acts on it.
	Change(ids []string, op spool.Op, sel spool.Select) ([]spool.Changed, error)
	// Active returns the recipients being delivered now, by message id.
	Active() map[string][]string
}

// The queue's types are what the wiring passes in.
var (
	_ Spool  = (*spool.Spool)(nil)
	_ Runner = (*queue.Runner)(nil)
)

// Message is one message in the queue, as GET /queue lists it.
type Message struct {
	// ID is the queue id.
	ID string `json:"id"`
	// From is the envelope sender; "" is the null sender (a bounce).
	From string `json:"from"`
	// Size is the size of the message data in bytes.
	Size int64 `json:"size"`
	// ReceivedAt is when the message was received.
	ReceivedAt time.Time `json:"received_at"`
	// Recipients are the recipients with their delivery state, in
	// envelope order; in a filtered list, only those the filter picks.
	Recipients []Recipient `json:"recipients"`
	// Held is set while the message is held for review (its recipients
	// are "held"): it is delivered only once released.
	Held bool `json:"held,omitempty"`
	// HoldReason says why it is held, e.g. "send limit: messages per hour".
	HoldReason string `json:"hold_reason,omitempty"`
}

// Recipient is one recipient of a Message with its delivery state.
type Recipient struct {
	// Addr is the recipient address.
	Addr string `json:"addr"`
	// Status is "pending", "held", "deferred", "delivered", "failed" or
	// "removed".
	Status string `json:"status"`
	// Active is set while the recipient is being delivered (Filter's
	// "active"); Status is then still the one before the attempt.
	Active bool `json:"active,omitempty"`
	// Attempts counts the finished delivery attempts.
	Attempts int `json:"attempts"`
	// NextAttempt is when a deferred recipient is tried again.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Updated is when the state last changed.
	Updated time.Time `json:"updated,omitzero"`
	// LastError is the error of the last failed attempt.
	LastError string `json:"last_error,omitempty"`
	// Code is the enhanced status code of the last attempt (RFC 3463).
	Code string `json:"code,omitempty"`
	// Diagnostic is the last attempt's outcome (RFC 3464 §2.3.6).
	Diagnostic string `json:"diagnostic,omitempty"`
	// RemoteMTA is the server the last attempt talked to.
	RemoteMTA string `json:"remote_mta,omitempty"`
	// Warned is set once a delay warning was sent for it.
	Warned bool `json:"warned,omitempty"`
	// Notify is the recipient's DSN NOTIFY parameter (RFC 3461 §4.1),
	// "NEVER" or a list such as "SUCCESS,FAILURE"; "" when the sender
	// gave none. Only MessageDetail fills it.
	Notify string `json:"notify,omitempty"`
	// ORcpt is the recipient's DSN ORCPT parameter (RFC 3461 §4.2),
	// decoded: "rfc822;bob@example.org"; "" when none. Only
	// MessageDetail fills it.
	ORcpt string `json:"orcpt,omitempty"`
}

// MessageDetail is one message with its whole envelope and its header
// section, as GET /queue/{id} returns it.
type MessageDetail struct {
	Message
	// Done is set when no recipient is left to deliver: the message is
	// no longer in the queue, only not yet removed from the spool.
	Done bool `json:"done"`
	// SMTPUTF8 is set when MAIL FROM carried SMTPUTF8 (RFC 6531).
	SMTPUTF8 bool `json:"smtputf8"`
	// RequireTLS is set when MAIL FROM carried REQUIRETLS (RFC 8689).
	RequireTLS bool `json:"requiretls"`
	// Body is "7BIT" or "8BITMIME".
	Body string `json:"body"`
	// AuthUser is the authenticated submitter, "" when none.
	AuthUser string `json:"auth_user,omitempty"`
	// Listener is the listener the message came in on ("dsn" for the
	// server's own bounces).
	Listener string `json:"listener"`
	// Remote is the client's address, "" when none.
	Remote string `json:"remote,omitempty"`
	// Helo is the name the client gave in EHLO or HELO.
	Helo string `json:"helo,omitempty"`
	// Ret is MAIL FROM's DSN RET parameter (RFC 3461 §4.3), "FULL" or
	// "HDRS"; "" when none.
	Ret string `json:"ret,omitempty"`
	// EnvID is MAIL FROM's DSN ENVID parameter (RFC 3461 §4.4), decoded
	// from xtext; "" when none.
	EnvID string `json:"envid,omitempty"`
	// Headers is the message's header section.
	Headers string `json:"headers"`
}

// Errors the Client returns; test with errors.Is.
var (
	// ErrNotRunning means no server listens on the socket.
	ErrNotRunning = errors.New("server not running")
	// ErrNotFound means the id is not in the queue.
	ErrNotFound = errors.New("no such message in the queue")
)

// Server serves the admin API. Set the fields before Serve and do not
// change them afterwards.
type Server struct {
	// Spool is the queue's spool. Required.
	Spool Spool
	// Runner is the queue runner, for retries. Required.
	Runner Runner
	// Bans is the admission state behind the ban API (bans.go); nil
	// makes that API answer 503.
	Bans BanStore
	// Local configures local submission, POST /submit (submit.go); nil
	// makes it answer 503.
	Local *LocalSubmit
	// Reload reads the configuration file again and applies what can
	// change live, and reloads the certificates and the users, as SIGHUP
	// does (POST /reload, reload.go); nil makes it answer 503.
	Reload func() ReloadReport
	// ReloadUsers reads the users again (POST /users/reload, users.go),
	// as `postern user` asks after a change; nil makes it answer 503.
	ReloadUsers func() error
	// Restart starts a graceful restart, as SIGUSR2 does, and returns
	// the new process's pid once it is ready to take over, or why it
	// failed (POST /restart, restart.go); nil makes it answer 503.
	Restart func(ctx context.Context) (int, error)
	// Version is the server's version, shown by the status page and
	// GET /process.
	Version string
	// Certs are the certificates the status page shows (status.go); nil
	// shows none.
	Certs CertSource
	// Events are the recent deliveries and auth anomalies the status
	// page shows (events.go); nil shows none.
	Events *Events
	// Started and Listeners are what the status page says of the server
	// besides its version: when it started (zero: no uptime shown) and
	// where it listens.
	Started   time.Time
	Listeners []ListenerInfo
	// Now is the clock of the ban API; nil means time.Now.
	Now func() time.Time
	// Logger receives one event per change made through the API; nil
	// means slog.Default().
	Logger *slog.Logger

	once    sync.Once
	hs      *http.Server
	log     *slog.Logger
	started time.Time
}

func (s *Server) init() {
	s.once.Do(func() {
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.Default()
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /queue", s.list)
		mux.HandleFunc("GET /queue/{id}", s.show)
		mux.HandleFunc("POST /queue/{id}/retry", s.retry)
		mux.HandleFunc("DELETE /queue/{id}", s.delete)
		mux.HandleFunc("POST /queue/{id}/release", s.release)
		s.changeRoutes(mux)  // change.go, cat.go
		s.banRoutes(mux)     // bans.go
		s.submitRoutes(mux)  // submit.go
		s.consoleRoutes(mux) // reload.go, status.go
		s.restartRoutes(mux) // restart.go
		s.started = s.now()
		mux.HandleFunc("POST /users/reload", s.reloadUsers) // users.go
		s.hs = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
			ConnContext:       connContext, // the caller's uid (submit.go)
		}
	})
}

// Serve answers requests on l until Shutdown; it then returns
// http.ErrServerClosed. l is closed on return; a unix listener made by
// Listen removes its socket file then.
func (s *Server) Serve(l net.Listener) error {
	if s.Spool == nil || s.Runner == nil {
		return errors.New("admin: Server.Spool and Server.Runner are required")
	}
	s.init()
	return s.hs.Serve(l)
}

// Shutdown stops the server: it closes the listeners, which removes the
// socket file, and waits for requests in progress until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	return s.hs.Shutdown(ctx)
}

// Listen listens on the unix socket path with mode 0600. A socket file
// left behind by a server that died is replaced; one a live server
// answers on is not (the error then wraps os.ErrExist), nor is a file
// that is not a socket. Closing the listener removes the socket file.
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("admin: listen %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin: listen %s: another server answers there: %w", path, os.ErrExist)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin: listen %s: remove stale socket: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	// The data directory is 0700 already; this keeps the socket private
	// even where it is not.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	return l, nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	f := filterOf(r.URL.Query())
	m, err := f.compile()
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{err.Error()})
		return
	}
	items := s.Spool.List()
	active := s.activeSet()
	out := struct {
		Messages []Message `json:"messages"`
	}{Messages: make([]Message, 0, len(items))}
	for _, it := range items {
		msg := message(it)
		for i := range msg.Recipients {
			msg.Recipients[i].Active = active[it.ID][msg.Recipients[i].Addr]
		}
		out.Messages = append(out.Messages, msg)
	}
	out.Messages = m.messages(out.Messages)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) show(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, err := s.detail(id)
	if err != nil {
		s.fail(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// detail returns message id with its envelope and header section.
func (s *Server) detail(id string) (MessageDetail, error) {
	it, err := s.Spool.Lookup(id)
	if err != nil {
		return MessageDetail{}, err
	}
	env, data, err := s.Spool.Header(id)
	if err != nil {
		return MessageDetail{}, err
	}
	msg := message(it)
	active := s.activeSet()[id]
	for i := range msg.Recipients {
		r := &msg.Recipients[i]
		r.Active = active[r.Addr]
		dsn := env.RcptDSN(r.Addr)
		r.Notify, r.ORcpt = dsn.Notify.String(), dsn.ORcpt
	}
	d := MessageDetail{
		Message:    msg,
		Done:       done(it),
		SMTPUTF8:   env.SMTPUTF8,
		RequireTLS: env.RequireTLS,
		Body:       env.Body,
		AuthUser:   env.AuthUser,
		Listener:   env.Listener,
		Helo:       env.Helo,
		Ret:        env.Ret,
		EnvID:      env.EnvID,
		Headers:    string(headerSection(data)),
	}
	if env.Remote.IsValid() {
		d.Remote = env.Remote.String()
	}
	return d, nil
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.Runner.Retry(id); err != nil {
		s.fail(w, id, err)
		return
	}
	s.log.Info("admin: retry", "id", id)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	it, err := s.Spool.Lookup(id)
	if err == nil && done(it) {
		err = spool.ErrNotFound
	}
	if err == nil {
		err = s.Spool.Delete(id)
	}
	if err != nil {
		s.fail(w, id, err)
		return
	}
	s.log.Info("admin: delete", "id", id, "from", it.From, "rcpts", len(it.Recipients))
	w.WriteHeader(http.StatusNoContent)
}

// fail answers an error: 404 for an unknown id, 500 otherwise.
func (s *Server) fail(w http.ResponseWriter, id string, err error) {
	if errors.Is(err, spool.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, errorBody{"no message " + id + " in the queue"})
		return
	}
	s.log.Error("admin: request failed", "id", id, "err", err)
	writeJSON(w, http.StatusInternalServerError, errorBody{err.Error()})
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// message converts a queue item.
func message(it spool.Item) Message {
	m := Message{ID: it.ID, From: it.From, Size: it.Size, ReceivedAt: it.ReceivedAt,
		Recipients: make([]Recipient, len(it.Recipients)), Held: it.Held, HoldReason: it.HoldReason}
	for i, r := range it.Recipients {
		st := r.State
		m.Recipients[i] = Recipient{
			Addr: r.Addr, Status: st.Status.String(), Attempts: st.Attempts,
			NextAttempt: st.NextAttempt, Updated: st.Updated, LastError: st.LastError,
			Code: st.Code, Diagnostic: st.Diagnostic, RemoteMTA: st.RemoteMTA, Warned: st.Warned,
		}
	}
	return m
}

// done reports whether every recipient of it is final.
func done(it spool.Item) bool {
	for _, r := range it.Recipients {
		if !r.State.Status.Final() {
			return false
		}
	}
	return true
}

// headerSection returns the header section of msg (RFC 5322 §2.1),
// without the empty line that ends it.
func headerSection(msg []byte) []byte {
	return bytes.TrimSuffix(msg[:smtp.HeaderEnd(msg)], []byte("\r\n"))
}
