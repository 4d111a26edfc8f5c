// Package autoconfig serves what mail clients fetch to configure an
// account on their own from the user's address alone: Mozilla's
// autoconfig file (Thunderbird, Thunderbird for Android and K-9 Mail,
// Evolution, KMail), Microsoft's Autodiscover "plain old XML" answer
// (Outlook and the clients that follow it), and an Apple configuration
// profile (.mobileconfig) a user opens on an iPhone, an iPad or a Mac.
//
// Each names the submission server (Options.Hostname): port 465 with TLS
// from the first byte and port 587 with STARTTLS (RFC 8314 §5.1 prefers
// the first), the user's address as login name, and the SASL mechanisms
// those listeners offer; and, when Options.IMAP is set, the IMAP server
// users read their mail from (Postern has none of its own). No password
// is ever in what is served, and the Apple profile is not signed (it
// carries no secret and comes over HTTPS with the server's certificate;
// a signature would need a CMS library the project does not have).
//
// Every input is hostile: the address a client sends (the emailaddress
// parameter, or the EMailAddress of an Autodiscover request) is parsed
// strictly (RFC 5321 §4.1.2 and §4.5.3.1 limits), must be in a local
// domain (else 404, the same answer as for a path that does not exist),
// and is written only through XML escaping; a request body is read up to
// MaxBodySize, a query up to MaxQuerySize. Whether the user exists is
// never looked at: the answer is the same for every address of a local
// domain, so it tells nothing about accounts.
package autoconfig

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Limits on what a client sends.
const (
	// MaxQuerySize is the longest query string accepted.
	MaxQuerySize = 1024
	// MaxBodySize is the largest Autodiscover request body accepted.
	MaxBodySize = 16 << 10
)

// The paths served. Autodiscover's is matched without case, as Outlook
// spells it both ways.
const (
	// PathMozillaWellKnown is Mozilla's autoconfig on the mail domain
	// itself (https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml).
	PathMozillaWellKnown = "/.well-known/autoconfig/mail/config-v1.1.xml"
	// PathMozilla is Mozilla's autoconfig on autoconfig.DOMAIN.
	PathMozilla = "/mail/config-v1.1.xml"
	// PathAutodiscover is Microsoft's POX Autodiscover.
	PathAutodiscover = "/autodiscover/autodiscover.xml"
	// PathApple is the Apple configuration profile.
	PathApple = "/mail/config.mobileconfig"
)

// Endpoint is a server a client connects to.
type Endpoint struct {
	// Host is the server's DNS name.
	Host string
	// Port is its TCP port.
	Port int
	// Mechanisms are the SASL mechanisms it offers (upper case, in
	// order of preference); nil means passwords (PLAIN).
	Mechanisms []string
}

// Options configure a Handler.
type Options struct {
	// Domains are the local domains (lower case): only their addresses
	// get an answer.
	Domains []string
	// Submissions is the submission server with implicit TLS (port 465,
	// RFC 8314), nil when there is none.
	Submissions *Endpoint
	// Submission is the submission server with STARTTLS (port 587, RFC
	// 6409 and RFC 3207), nil when there is none.
	Submission *Endpoint
	// IMAP is the IMAP server with implicit TLS (port 993), nil when
	// none is configured.
	IMAP *Endpoint
	// Logger receives one event per answer; nil discards them.
	Logger *slog.Logger
	// Metrics counts the requests (NewMetrics); nil counts into a set
	// registered nowhere.
	Metrics *Metrics
}

// Handler serves the autoconfiguration files; it is an http.Handler.
type Handler struct {
	o       Options
	domains map[string]bool
	log     *slog.Logger
}

// New checks o and returns its Handler.
func New(o Options) (*Handler, error) {
	if len(o.Domains) == 0 {
		return nil, errors.New("autoconfig: no domain")
	}
	if o.Submissions == nil && o.Submission == nil {
		return nil, errors.New("autoconfig: no submission server to name")
	}
	h := &Handler{o: o, domains: map[string]bool{}, log: o.Logger}
	for _, d := range o.Domains {
		h.domains[strings.ToLower(d)] = true
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.o.Metrics == nil {
		h.o.Metrics = NewMetrics(nil)
	}
	return h, nil
}

// request is what every format needs to know of a request.
type request struct {
	format string
	domain string // a local domain
	addr   string // the user's address; "" when the client gave none (Mozilla)
}

// httpError is an answer other than 200.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// errUnknown is the answer for an unknown domain, as for an unknown path.
var errUnknown = &httpError{code: http.StatusNotFound, msg: "not found"}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	format, serve := h.route(r)
	if serve == nil {
		h.answer(w, r, "unknown", errUnknown)
		return
	}
	var body []byte
	var ctype string
	rq, err := h.parse(r, format)
	if err == nil {
		body, ctype, err = serve(rq)
	}
	if err != nil {
		h.answer(w, r, format, err)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-store")
	if format == "apple" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+rq.domain+`.mobileconfig"`)
	}
	h.o.Metrics.Requests.WithLabelValues(format, "ok").Inc()
	h.log.Info("autoconfig served", "format", format, "domain", rq.domain, "remote", r.RemoteAddr)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// answer writes an error answer and counts it.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, format string, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{code: http.StatusInternalServerError, msg: "internal error"}
		h.log.Error("autoconfig failed", "format", format, "err", err)
	}
	result := "not_found"
	switch he.code {
	case http.StatusNotFound:
	case http.StatusMethodNotAllowed:
		result = "bad_method"
		w.Header().Set("Allow", "GET, HEAD, POST")
	case http.StatusRequestEntityTooLarge:
		result = "too_large"
	default:
		result = "bad_request"
	}
	h.o.Metrics.Requests.WithLabelValues(format, result).Inc()
	h.log.Debug("autoconfig refused", "format", format, "status", he.code, "reason", he.msg, "remote", r.RemoteAddr)
	http.Error(w, he.msg, he.code)
}

// route returns the format a request asks for and what serves it, or a
// nil func for a path not served.
func (h *Handler) route(r *http.Request) (string, func(request) ([]byte, string, error)) {
	switch p := r.URL.Path; {
	case p == PathMozilla || p == PathMozillaWellKnown:
		return "mozilla", h.mozilla
	case strings.EqualFold(p, PathAutodiscover):
		return "autodiscover", h.autodiscover
	case p == PathApple:
		return "apple", h.apple
	}
	return "", nil
}

// parse checks the method, the query, and finds the domain and the
// address a request is for.
func (h *Handler) parse(r *http.Request, format string) (request, error) {
	rq := request{format: format}
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
	case r.Method == http.MethodPost && format == "autodiscover":
	default:
		return rq, fail(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	}
	if len(r.URL.RawQuery) > MaxQuerySize {
		return rq, fail(http.StatusBadRequest, "query longer than %d bytes", MaxQuerySize)
	}
	raw, err := queryValue(r.URL.RawQuery, "emailaddress")
	if err != nil {
		return rq, err
	}
	if format == "autodiscover" && r.Method == http.MethodPost {
		if raw != "" {
			return rq, fail(http.StatusBadRequest, "the address goes in the request body, not the query")
		}
		if raw, err = readAutodiscoverRequest(r); err != nil {
			return rq, err
		}
	}
	if raw == "" {
		if format == "apple" {
			return rq, fail(http.StatusBadRequest, "no address: add ?emailaddress=USER@DOMAIN")
		}
		// Mozilla without an address: the domain the client asked, and
		// %EMAILADDRESS% for the client to fill in. Autodiscover by GET
		// without one (Delta Chat's): that domain, and no LoginName (the
		// client logs in with the address it has). A POST without one
		// was refused above.
		rq.domain = hostDomain(r.Host)
		if !h.domains[rq.domain] {
			return rq, errUnknown
		}
		return rq, nil
	}
	local, domain, err := ParseAddress(raw)
	if err != nil {
		return rq, fail(http.StatusBadRequest, "%v", err)
	}
	if !h.domains[domain] {
		return rq, errUnknown
	}
	rq.domain, rq.addr = domain, local+"@"+domain
	return rq, nil
}

// queryValue returns the one value of key in a raw query, unescaped as
// a path is (a "+" stays a plus: it is common in addresses), "" when
// absent; given twice, or badly escaped, is an error.
func queryValue(rawQuery, key string) (string, error) {
	var val string
	found := false
	for part := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		if k != key {
			continue
		}
		if found {
			return "", fail(http.StatusBadRequest, "%s given twice", key)
		}
		found = true
		u, err := url.PathUnescape(v)
		if err != nil {
			return "", fail(http.StatusBadRequest, "%s: bad percent-encoding", key)
		}
		val = u
	}
	if found && val == "" {
		return "", fail(http.StatusBadRequest, "%s is empty", key)
	}
	return val, nil
}

// hostDomain returns the mail domain a Host header names: the host
// without port, lower case, without a leading "autoconfig." or
// "autodiscover.".
func hostDomain(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range []string{"autoconfig.", "autodiscover."} {
		if rest, ok := strings.CutPrefix(host, p); ok {
			return rest
		}
	}
	return host
}

// passwordMechanisms are the mechanisms a client uses with the
// password: what "a password" means in the three formats.
var passwordMechanisms = []string{"PLAIN", "LOGIN"}

// mechanisms returns e's mechanisms, PLAIN when none is named.
func (e *Endpoint) mechanisms() []string {
	if len(e.Mechanisms) == 0 {
		return []string{"PLAIN"}
	}
	return e.Mechanisms
}

// offers reports whether e offers one of ms.
func (e *Endpoint) offers(ms ...string) bool {
	return slices.ContainsFunc(e.mechanisms(), func(m string) bool { return slices.Contains(ms, m) })
}
