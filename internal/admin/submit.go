package admin

// Local submission (`postern sendmail`), beside the queue's API:
//
//	POST /submit   {"from": ADDR, "rcpts": [ADDR...], "data": BASE64,
//	               "notify": N, "ret": R, "envid": E (DSN, optional)}
//	               queue the message: {"id": ID} (200), with
//	               "held": true and "hold_reason" when held for review
//
// The socket is mode 0600, so only root and the user the server runs as
// can submit; the server learns the caller's uid from the socket
// (SO_PEERCRED) and names it in the Received field it prepends. The
// submission is attributed to the caller's Unix user (LocalSender), not
// to the envelope sender, which the caller chooses: that name is the
// envelope's AuthUser and the one the send limits count it under. It
// adds Message-ID and Date when the message lacks them (as submission
// does, RFC 6409 §8). A message with more Received fields than the loop
// limit (smtp.MaxReceived, ours included) is refused, as on the SMTP
// listeners. Errors: 400 for a bad envelope or message (the caller
// should not retry it), 413 for a message over the size limit,
// 429 for a message over the caller's send limits (nothing queued; the
// caller may retry later), 503 when local submission is off, 500 when
// the message could not be queued (the caller may retry).

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"postern/internal/addrkey"
	"postern/internal/admission"
	"postern/internal/smtp"
)

// Submitter stores a locally submitted message; the wiring passes the
// spool, possibly behind a DKIM signer.
type Submitter interface {
	// Submit stores env and msg durably and returns nil only once they
	// are (as spool.Spool.PutMessage does). It may prepend header
	// fields to msg.Header.
	Submit(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error
}

// SendLimiter applies the send limits to local submissions as to
// authenticated SMTP users (admission.Limiter has this method; see
// smtpd.SendLimiter).
type SendLimiter interface {
	// CheckMessage counts a message of user with rcpts recipients. A
	// verdict with Over set refuses the message, unless Hold is set
	// too: then the message is taken and held for review.
	CheckMessage(ctx context.Context, user string, rcpts int, now time.Time) admission.MessageVerdict
}

// LocalSubmit configures POST /submit (Server.Local).
type LocalSubmit struct {
	// Submitter takes the messages. Required.
	Submitter Submitter
	// Limiter, when not nil, applies the send limits to each message,
	// under the caller's name (LocalSender): over a limit the message
	// is refused with 429 (Client.Submit: ErrSendLimit), or taken and
	// held for review when the verdict says Hold.
	Limiter SendLimiter
	// Hostname is the server's name, in Received and Message-ID.
	Hostname string
	// MaxMessageSize bounds the message data; 0 means 35 MiB.
	MaxMessageSize int64
	// MaxRecipients bounds the recipients; 0 means 1000.
	MaxRecipients int
	// RouteBare, when not nil, says where the mail for a recipient the
	// request lists in Bare goes (a bare local name the caller
	// qualified): the address itself, or another (the postmaster, when
	// it names no user or alias). nil keeps them as they are.
	RouteBare func(ctx context.Context, addr string) (string, error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// SubmitRequest is the body of POST /submit.
type SubmitRequest struct {
	// From is the envelope sender; "" is the null sender.
	From string `json:"from"`
	// Recipients are the envelope recipients; at least one.
	Recipients []string `json:"rcpts"`
	// Data is the message, with CRLF line endings and no bare CR or LF.
	Data []byte `json:"data"`
	// Bare lists the recipients of Recipients that the caller made by
	// qualifying a bare local name ("root"): LocalSubmit.RouteBare
	// decides where they go.
	Bare []string `json:"bare,omitempty"`
	// The DSN parameters (RFC 3461), as an SMTP client's MAIL and RCPT
	// give them (postern sendmail -N, -R, -V): Notify is every
	// recipient's NOTIFY ("NEVER", "SUCCESS,FAILURE"), Ret is RET ("FULL"
	// or "HDRS") and EnvID is ENVID, not xtext-encoded; "" for none.
	Notify string `json:"notify,omitempty"`
	Ret    string `json:"ret,omitempty"`
	EnvID  string `json:"envid,omitempty"`
}

// SubmitResult is the answer to POST /submit.
type SubmitResult struct {
	// ID is the queue id of the message.
	ID string `json:"id"`
	// Held is set when the message went past the caller's send limits
	// and the policy is to hold: it is queued, but delivered only once
	// an operator releases it. HoldReason says why.
	Held       bool   `json:"held,omitempty"`
	HoldReason string `json:"hold_reason,omitempty"`
}

// ErrRefused means the server refused the message for good (a bad
// address, a bad message, too big): retrying will not help.
var ErrRefused = errors.New("message refused")

// ErrLocalOff means the server does not take local submissions.
var ErrLocalOff = errors.New("local submission is off")

// ErrSendLimit means the message went past the caller's send limits and
// was not queued: the caller may try again later.
var ErrSendLimit = errors.New("over the send limit")

// LocalSender returns the name a local submission from the process with
// uid is attributed to, and counted under in the send limits
// ([send_limits.users."local:NAME"]): "local:" and the Unix user name
// ("local:www-data"), the uid when it has no name ("local:1001"), or
// "local:unknown" when the server could not learn it (no SO_PEERCRED).
// It never contains "@", so it names no directory user.
func LocalSender(uid int) string {
	if uid < 0 {
		return "local:unknown"
	}
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil && u.Username != "" {
		return "local:" + u.Username
	}
	return "local:" + id
}

// peerKey is the context key of the connection's peer uid.
type peerKey struct{}

// connContext records the uid of the process at the other end of a
// unix socket connection (-1 when unknown).
func connContext(ctx context.Context, c net.Conn) context.Context {
	uid := -1
	if uc, ok := c.(*net.UnixConn); ok {
		uid = peerUID(uc)
	}
	return context.WithValue(ctx, peerKey{}, uid)
}

func (s *Server) submitRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /submit", s.submit)
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	ls := s.Local
	if ls == nil || ls.Submitter == nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{ErrLocalOff.Error()})
		return
	}
	maxSize := ls.MaxMessageSize
	if maxSize <= 0 {
		maxSize = 35 << 20
	}
	// Base64 makes 4 bytes of 3, plus room for the envelope.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSize/3*4+1<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{"read request: " + err.Error()})
		return
	}
	var req SubmitRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{"bad request: " + err.Error()})
		return
	}
	if int64(len(req.Data)) > maxSize {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("message too big: %d bytes, the limit is %d", len(req.Data), maxSize)})
		return
	}
	uid, ok := r.Context().Value(peerKey{}).(int)
	if !ok {
		uid = -1
	}
	env, msg, err := ls.prepare(&req, uid)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{err.Error()})
		return
	}
	if err := ls.routeBare(r.Context(), env, req.Bare); err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody{"route: " + err.Error()})
		return
	}
	if ls.Limiter != nil {
		v := ls.Limiter.CheckMessage(r.Context(), env.AuthUser, len(env.Recipients), env.ReceivedAt)
		switch {
		case v.Over == nil:
		case v.Hold:
			env.Hold, env.HoldReason = true, "send limit: "+cmp.Or(v.Limit, "send limit")
		default: // the Limiter logged "send limit reached"
			writeJSON(w, http.StatusTooManyRequests, errorBody{v.Over.Message + " (" + env.AuthUser + ")"})
			return
		}
	}
	if err := ls.Submitter.Submit(r.Context(), env, msg); err != nil {
		s.log.Error("admin: local submission failed", "id", env.ID, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{"queue: " + err.Error()})
		return
	}
	if env.Hold {
		s.log.Warn("message held", "via", "local", "user", env.AuthUser, "reason", env.HoldReason, "id", env.ID,
			"rcpts", len(env.Recipients))
	}
	if s.Events != nil {
		s.Events.Accepted(env.ReceivedAt)
	}
	s.log.Info("message accepted", "via", "local", "id", env.ID, "from", env.From,
		"rcpts", len(env.Recipients), "size", msg.Size(), "uid", uid, "user", env.AuthUser)
	writeJSON(w, http.StatusOK, SubmitResult{ID: env.ID, Held: env.Hold, HoldReason: env.HoldReason})
}

// prepare checks a request and returns the envelope and the message
// with Received (and Message-ID and Date when missing) prepended.
func (ls *LocalSubmit) prepare(req *SubmitRequest, uid int) (*smtp.Envelope, *smtp.Message, error) {
	now := time.Now()
	if ls.Now != nil {
		now = ls.Now()
	}
	env := &smtp.Envelope{ID: smtp.NewID(now), Listener: "local", ReceivedAt: now, Body: "7BIT", AuthUser: LocalSender(uid)}
	if req.From != "" {
		a, err := smtp.ParseAddress(req.From, true)
		if err != nil {
			return nil, nil, fmt.Errorf("sender %q: %w", req.From, err)
		}
		env.From = a.String()
	}
	maxRcpts := ls.MaxRecipients
	if maxRcpts <= 0 {
		maxRcpts = 1000
	}
	if len(req.Recipients) == 0 {
		return nil, nil, errors.New("no recipients")
	}
	if len(req.Recipients) > maxRcpts {
		return nil, nil, fmt.Errorf("too many recipients: %d, the limit is %d", len(req.Recipients), maxRcpts)
	}
	seen := make(map[string]bool, len(req.Recipients))
	for _, rc := range req.Recipients {
		a, err := smtp.ParseAddress(rc, true)
		if err != nil {
			return nil, nil, fmt.Errorf("recipient %q: %w", rc, err)
		}
		// The parser lowers ASCII letters; the rest must be a valid IDNA
		// name, not folded into another one (addrkey).
		if _, err := addrkey.Domain(a.Domain); err != nil {
			return nil, nil, fmt.Errorf("recipient %q: %w", rc, err)
		}
		addr := a.String()
		if !seen[addr] {
			seen[addr] = true
			env.Recipients = append(env.Recipients, addr)
		}
	}
	env.SMTPUTF8 = !smtp.IsASCII(env.From) || !smtp.IsASCII(strings.Join(env.Recipients, ""))
	if err := setDSN(env, req); err != nil {
		return nil, nil, err
	}
	if err := checkLines(req.Data); err != nil {
		return nil, nil, err
	}
	if !smtp.IsASCII(string(req.Data)) {
		env.Body = "8BITMIME"
	}
	msg := req.Data
	if len(msg) > 0 && !bytes.HasSuffix(msg, []byte("\r\n")) {
		msg = append(msg, "\r\n"...)
	}
	hdr := msg[:smtp.HeaderEnd(msg)]
	// RFC 5321 §6.3: refused here rather than bounced by the queue.
	if n := smtp.CountFields(hdr, "Received") + 1; n > smtp.MaxReceived {
		return nil, nil, fmt.Errorf("routing loop detected (%d Received header fields)", n)
	}
	host := ls.Hostname
	if host == "" {
		host = "localhost"
	}
	// RFC 5321 §4.4: the trace field; like a local MTA's, it names the
	// submitting uid instead of a client host. RFC 6409 §8: Message-ID
	// and Date when missing.
	head := make([]byte, 0, 256)
	head = smtp.AppendReceived(head, smtp.Received{Host: host, Local: smtp.LocalUser(uid), ID: env.ID, Date: now})
	head = smtp.CheckHeader(hdr).Append(head, env.ID, host, now)
	return env, &smtp.Message{Header: append(head, hdr...), Body: smtp.BodyBytes(msg[len(hdr):])}, nil
}

// routeBare replaces each recipient of env listed in bare by where
// RouteBare sends it, keeping the order and dropping duplicates.
func (ls *LocalSubmit) routeBare(ctx context.Context, env *smtp.Envelope, bare []string) error {
	if ls.RouteBare == nil || len(bare) == 0 {
		return nil
	}
	isBare := make(map[string]bool, len(bare))
	for _, b := range bare {
		if a, err := smtp.ParseAddress(b, true); err == nil {
			isBare[a.String()] = true
		}
	}
	out := env.Recipients[:0:0]
	var dsn map[string]smtp.RcptDSN
	if env.DSN != nil {
		dsn = make(map[string]smtp.RcptDSN, len(env.DSN))
	}
	for _, rc := range env.Recipients {
		d, ok := env.DSN[rc]
		if isBare[rc] {
			to, err := ls.RouteBare(ctx, rc)
			if err != nil {
				return err
			}
			rc = to
		}
		if !slices.Contains(out, rc) {
			out = append(out, rc)
			if ok {
				dsn[rc] = d
			}
		}
	}
	env.Recipients, env.DSN = out, dsn
	return nil
}

// setDSN checks the DSN parameters of req and gives them to env, as
// the SMTP listeners check and keep those of MAIL and RCPT (RFC 3461
// §4): RET and ENVID for the message, NOTIFY for each recipient.
func setDSN(env *smtp.Envelope, req *SubmitRequest) error {
	if req.Ret != "" {
		r, err := smtp.ParseRet(req.Ret)
		if err != nil {
			return fmt.Errorf("RET %q: want FULL or HDRS", req.Ret)
		}
		env.Ret = r
	}
	if req.EnvID != "" {
		// The limit is on the xtext form an SMTP client would send.
		if _, err := smtp.ParseEnvID(smtp.XtextEncode(req.EnvID)); err != nil {
			return fmt.Errorf("ENVID %q: want printable ASCII, at most %d characters as xtext", req.EnvID, smtp.MaxEnvID)
		}
		env.EnvID = req.EnvID
	}
	if req.Notify != "" {
		n, err := smtp.ParseNotify(req.Notify)
		if err != nil {
			return fmt.Errorf("NOTIFY %q: want NEVER, or a list of SUCCESS, DELAY and FAILURE", req.Notify)
		}
		env.DSN = make(map[string]smtp.RcptDSN, len(env.Recipients))
		for _, r := range env.Recipients {
			env.DSN[r] = smtp.RcptDSN{Notify: n}
		}
	}
	return nil
}

// checkLines refuses a bare CR or LF: only CRLF ends a line (the client
// converts them), as in DATA.
func checkLines(b []byte) error {
	for i, c := range b {
		switch {
		case c == '\n' && (i == 0 || b[i-1] != '\r'):
			return fmt.Errorf("bare LF at offset %d (lines must end in CRLF)", i)
		case c == '\r' && (i+1 == len(b) || b[i+1] != '\n'):
			return fmt.Errorf("bare CR at offset %d (lines must end in CRLF)", i)
		case c == 0:
			return fmt.Errorf("NUL at offset %d", i)
		}
	}
	return nil
}

// Submit hands a message to the server's queue and returns its id (and
// whether it is held for review). It fails wrapping ErrNotRunning when
// no server listens, ErrRefused when the server refused the message for
// good, ErrSendLimit when it is over the caller's send limits (retry
// later), ErrLocalOff when local submission is off, and with another
// error for a failure that may pass (retry later).
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (SubmitResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return SubmitResult{}, fmt.Errorf("admin: submit: %w", err)
	}
	status, out, err := c.send(ctx, http.MethodPost, "/submit", body, 2*time.Minute)
	if err != nil {
		return SubmitResult{}, fmt.Errorf("admin: submit: %w", err)
	}
	var e errorBody
	json.Unmarshal(out, &e)
	switch {
	case status == http.StatusOK:
		var res SubmitResult
		if err := json.Unmarshal(out, &res); err != nil || res.ID == "" {
			return SubmitResult{}, fmt.Errorf("admin: submit: bad answer %q", out)
		}
		return res, nil
	case status == http.StatusServiceUnavailable:
		return SubmitResult{}, fmt.Errorf("admin: submit: %w", ErrLocalOff)
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		return SubmitResult{}, fmt.Errorf("admin: submit: %w (the server is older than this command)", ErrLocalOff)
	case status == http.StatusTooManyRequests:
		return SubmitResult{}, fmt.Errorf("admin: submit: %w: %s", ErrSendLimit, e.Error)
	case status >= 400 && status < 500:
		return SubmitResult{}, fmt.Errorf("admin: submit: %w: %s", ErrRefused, e.Error)
	}
	if e.Error == "" {
		e.Error = fmt.Sprintf("%d %s", status, http.StatusText(status))
	}
	return SubmitResult{}, fmt.Errorf("admin: submit: server: %s", e.Error)
}
