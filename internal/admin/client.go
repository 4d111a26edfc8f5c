package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"
)

// Client calls the admin API of a running server over its unix socket.
// Its methods fail wrapping ErrNotRunning when nothing listens on the
// socket, and ErrNotFound for an id that is not in the queue.
type Client struct {
	// SocketPath is the server's socket, DATA/admin.sock.
	SocketPath string
	// Timeout bounds each call; 0 means 30 seconds.
	Timeout time.Duration
}

// List returns the messages in the queue, by arrival.
func (c *Client) List(ctx context.Context) ([]Message, error) {
	return c.ListFilter(ctx, Filter{})
}

// ListFilter returns the messages in the queue that f picks, by
// arrival, each with only the recipients f picks (every recipient when f
// is empty). It fails with a *ServerError for a filter the server
// refuses (Filter.Check says why first). It applies f to the answer
// too, so that a server of an older release, which ignores f, does not
// make it list more.
func (c *Client) ListFilter(ctx context.Context, f Filter) ([]Message, error) {
	var out struct {
		Messages []Message `json:"messages"`
	}
	path := "/queue"
	if !f.Empty() {
		path += "?" + f.values().Encode()
	}
	if err := c.do(ctx, http.MethodGet, path, &out); err != nil {
		return nil, fmt.Errorf("admin: list: %w", err)
	}
	if f.Empty() {
		return out.Messages, nil
	}
	// Again here: a server of an older release ignores the filter.
	m, err := f.compile()
	if err != nil {
		return nil, fmt.Errorf("admin: list: %w", err)
	}
	return m.messages(out.Messages), nil
}

// Show returns message id with its envelope and header section.
func (c *Client) Show(ctx context.Context, id string) (*MessageDetail, error) {
	var d MessageDetail
	if err := c.do(ctx, http.MethodGet, "/queue/"+url.PathEscape(id), &d); err != nil {
		return nil, fmt.Errorf("admin: show %s: %w", id, err)
	}
	return &d, nil
}

// Retry makes the deferred recipients of message id due now.
func (c *Client) Retry(ctx context.Context, id string) error {
	if err := c.do(ctx, http.MethodPost, "/queue/"+url.PathEscape(id)+"/retry", nil); err != nil {
		return fmt.Errorf("admin: retry %s: %w", id, err)
	}
	return nil
}

// Delete stops delivery of message id; no bounce is sent.
func (c *Client) Delete(ctx context.Context, id string) error {
	if err := c.do(ctx, http.MethodDelete, "/queue/"+url.PathEscape(id), nil); err != nil {
		return fmt.Errorf("admin: delete %s: %w", id, err)
	}
	return nil
}

// ServerError is an error the server answered with: what it says.
type ServerError struct{ Msg string }

func (e *ServerError) Error() string { return "server: " + e.Msg }

// do makes one request and decodes a JSON answer into out (unless nil).
func (c *Client) do(ctx context.Context, method, path string, out any) error {
	return c.doTimeout(ctx, method, path, out, 30*time.Second)
}

// doTimeout is do bounded by timeout, unless the Client's Timeout is set.
func (c *Client) doTimeout(ctx context.Context, method, path string, out any, timeout time.Duration) error {
	return c.doJSON(ctx, method, path, nil, out, timeout)
}

// doJSON is doTimeout with in, unless nil, sent as the JSON body of the
// request.
func (c *Client) doJSON(ctx context.Context, method, path string, in, out any, timeout time.Duration) error {
	var reqBody []byte
	if in != nil {
		var err error
		if reqBody, err = json.Marshal(in); err != nil {
			return err
		}
	}
	status, body, err := c.send(ctx, method, path, reqBody, timeout)
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusConflict: // only the release API's "not held"
		return ErrNotHeld
	case status == http.StatusMethodNotAllowed: // a path it knows for other methods only
		return ErrOldServer
	case status >= 300:
		var e errorBody
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return &ServerError{Msg: e.Error}
		}
		return fmt.Errorf("server: %d %s", status, http.StatusText(status))
	case out == nil:
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// send makes one request over the admin socket, with a JSON body when
// reqBody is not nil, and returns the status and the answer (at most 64
// MiB). The Client's Timeout, or else defaultTimeout, bounds it. A server
// that is not there gives an error wrapping ErrNotRunning.
func (c *Client) send(ctx context.Context, method, path string, reqBody []byte, defaultTimeout time.Duration) (int, []byte, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := c.transport()
	defer tr.CloseIdleConnections()
	var rd io.Reader
	if reqBody != nil {
		rd = bytes.NewReader(reqBody)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://postern"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if reqBody != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.roundTrip(tr, req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, body, nil
}

// transport returns an HTTP transport over the admin socket, for one
// request.
func (c *Client) transport() *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.SocketPath)
		},
		DisableKeepAlives: true,
	}
}

// roundTrip sends req over tr; a server that is not there gives an
// error wrapping ErrNotRunning.
func (c *Client) roundTrip(tr *http.Transport, req *http.Request) (*http.Response, error) {
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w: %w", ErrNotRunning, err)
		}
		return nil, err
	}
	return resp, nil
}

// stream makes a request whose answer is a stream: the Client's Timeout,
// or 30 seconds, bounds the wait for the answer's header, not the
// reading of its body, which ends with ctx. An answer other than 200
// gives an error, wrapping ErrNotFound for the API's 404 and
// ErrOldServer for the router's (a path an older server does not know).
func (c *Client) stream(ctx context.Context, method, path string) (*http.Response, error) {
	tr := c.transport()
	tr.ResponseHeaderTimeout = c.Timeout
	if tr.ResponseHeaderTimeout <= 0 {
		tr.ResponseHeaderTimeout = 30 * time.Second
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://postern"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.roundTrip(tr, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	var e errorBody
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	isJSON := json.Unmarshal(body, &e) == nil && e.Error != ""
	switch {
	case resp.StatusCode == http.StatusNotFound && isJSON:
		return nil, ErrNotFound
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusMethodNotAllowed:
		// Not the API's answer but the router's: an older server.
		return nil, ErrOldServer
	case isJSON:
		return nil, &ServerError{Msg: e.Error}
	}
	return nil, fmt.Errorf("server: %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
}
