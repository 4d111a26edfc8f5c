package admin

// The message as stored (`postern queue cat ID`, as postcat):
//
//	GET /queue/{id}/message           the whole message, streamed
//	GET /queue/{id}/message?header=1  its header section only
//
// The answer is the message's bytes exactly as the spool holds them
// (CRLF line ends, the Received and other fields the server added on
// top), Content-Type message/rfc822, or text/plain for a header section
// (which ends with its empty line). A large message is streamed from
// its blob, never held whole in memory, on either side. It answers 400
// for an id that is not a queue id (smtp.ValidID), 404
// for a message the spool no longer holds; a message done (delivered)
// but not yet removed can still be read.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"postern/internal/smtp"
)

// catWriteTime bounds how long the server writes one message to a
// reader (a pager a person reads in): the admin server's one-minute
// write timeout would cut a large message short.
const catWriteTime = time.Hour

func (s *Server) cat(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !smtp.ValidID(id) {
		writeJSON(w, http.StatusBadRequest, errorBody{fmt.Sprintf("%q is not a queue id (letters and digits)", id)})
		return
	}
	_, msg, err := s.Spool.Open(id)
	if err != nil {
		s.fail(w, id, err)
		return
	}
	defer msg.Close()
	headerOnly := r.URL.Query().Get("header") == "1"
	n := msg.Size()
	if headerOnly {
		n = int64(len(msg.Header))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "message/rfc822")
	}
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(catWriteTime))
	w.WriteHeader(http.StatusOK)
	if headerOnly {
		_, err = w.Write(msg.Header)
	} else {
		_, err = msg.WriteTo(w)
	}
	if err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, net.ErrClosed) {
		s.log.Warn("admin: cat: write", "id", id, "err", err)
	}
}

// Cat writes message id as stored to w, or with headerOnly its header
// section, streaming it: a large message is never whole in memory. It
// fails wrapping ErrNotFound when the spool no longer holds the message.
// The Client's Timeout bounds the wait for the answer to begin, not the
// copy.
func (c *Client) Cat(ctx context.Context, id string, headerOnly bool, w io.Writer) error {
	path := "/queue/" + url.PathEscape(id) + "/message"
	if headerOnly {
		path += "?header=1"
	}
	resp, err := c.stream(ctx, http.MethodGet, path)
	if err != nil {
		return fmt.Errorf("admin: cat %s: %w", id, err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("cut short after %d of %d bytes", n, resp.ContentLength)
	}
	if err != nil {
		return fmt.Errorf("admin: cat %s: %w", id, err)
	}
	return nil
}
