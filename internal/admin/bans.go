package admin

// The ban API (`postern ban`), beside the queue's:
//
//	GET    /bans                    the live bans: {"bans": [BanInfo...]}
//	GET    /bans/lookup?addr=A      the ban that holds address A: BanInfo (404: none)
//	POST   /bans?prefix=P&for=D&reason=R
//	                                ban P (an address or a CIDR prefix) for the
//	                                duration D (default 24h): BanInfo (201)
//	DELETE /bans?prefix=P           lift the ban of exactly P (204; 404: none)

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"postern/internal/admission"
)

// BanStore is what the ban API needs of the admission state; every
// admission.Store implements it.
type BanStore interface {
	// PutBan records b, replacing any ban of the same prefix.
	PutBan(ctx context.Context, b admission.Ban) error
	// DeleteBan removes the ban of exactly p; ok is false when none.
	DeleteBan(ctx context.Context, p netip.Prefix) (ok bool, err error)
	// Banned returns the longest-lasting live ban that holds addr.
	Banned(ctx context.Context, addr netip.Addr, now time.Time) (admission.Ban, bool, error)
	// Bans lists the live bans.
	Bans(ctx context.Context, now time.Time) ([]admission.Ban, error)
	// Strikes returns how many times p was banned before.
	Strikes(ctx context.Context, p netip.Prefix) (int, error)
}

// Limits of a manual ban.
const (
	// DefaultBanFor is how long `postern ban add` bans without --for.
	DefaultBanFor = 24 * time.Hour
	// MaxBanFor is the longest manual ban: long bans belong in a
	// listener's deny list, which the configuration keeps.
	MaxBanFor = 366 * 24 * time.Hour
	// MinBanBits4 and MinBanBits6 are the shortest prefixes that may be
	// banned by hand: a typo must not lock out a continent.
	MinBanBits4 = 8
	MinBanBits6 = 16
	// maxReason bounds the length of a ban's reason.
	maxReason = 200
)

// ErrNoBan means no ban holds the address, or none has exactly the
// prefix given.
var ErrNoBan = errors.New("no such ban")

// BanInfo is one ban as the API shows it.
type BanInfo struct {
	// Prefix is the banned range; one address is a /32 or a /128.
	Prefix string `json:"prefix"`
	// Until is when the ban ends.
	Until time.Time `json:"until"`
	// Reason says why, for the operator.
	Reason string `json:"reason"`
	// Created is when the ban was made.
	Created time.Time `json:"created,omitzero"`
	// Strikes counts the bans of this prefix so far; the abuse engine's
	// next ban of it lasts longer.
	Strikes int `json:"strikes"`
	// Manual is true for bans made with `postern ban add`.
	Manual bool `json:"manual"`
}

func banInfo(b admission.Ban) BanInfo {
	return BanInfo{Prefix: b.Prefix.String(), Until: b.Until, Reason: b.Reason,
		Created: b.Created, Strikes: b.Strikes, Manual: b.Manual}
}

// banRoutes adds the ban API to mux.
func (s *Server) banRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /bans", s.banList)
	mux.HandleFunc("GET /bans/lookup", s.banLookup)
	mux.HandleFunc("POST /bans", s.banAdd)
	mux.HandleFunc("DELETE /bans", s.banDelete)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// banStore answers 503 and returns nil when the server has no store.
func (s *Server) banStore(w http.ResponseWriter) BanStore {
	if s.Bans == nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{"bans are not available on this server"})
	}
	return s.Bans
}

func (s *Server) banList(w http.ResponseWriter, r *http.Request) {
	st := s.banStore(w)
	if st == nil {
		return
	}
	bans, err := st.Bans(r.Context(), s.now())
	if err != nil {
		s.banFail(w, err)
		return
	}
	out := struct {
		Bans []BanInfo `json:"bans"`
	}{Bans: make([]BanInfo, 0, len(bans))}
	for _, b := range bans {
		out.Bans = append(out.Bans, banInfo(b))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) banLookup(w http.ResponseWriter, r *http.Request) {
	st := s.banStore(w)
	if st == nil {
		return
	}
	a, err := netip.ParseAddr(r.URL.Query().Get("addr"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{fmt.Sprintf("%q is not an IP address", r.URL.Query().Get("addr"))})
		return
	}
	b, ok, err := st.Banned(r.Context(), a.Unmap(), s.now())
	if err != nil {
		s.banFail(w, err)
		return
	}
	if !ok {
		writeJSON(w, http.StatusNotFound, errorBody{"no ban holds " + a.Unmap().String()})
		return
	}
	writeJSON(w, http.StatusOK, banInfo(b))
}

func (s *Server) banAdd(w http.ResponseWriter, r *http.Request) {
	st := s.banStore(w)
	if st == nil {
		return
	}
	q := r.URL.Query()
	p, err := ParseBanPrefix(q.Get("prefix"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{err.Error()})
		return
	}
	d := DefaultBanFor
	if v := q.Get("for"); v != "" {
		d, err = time.ParseDuration(v)
		if err != nil || d <= 0 || d > MaxBanFor {
			writeJSON(w, http.StatusBadRequest, errorBody{fmt.Sprintf("for: %q is not a duration from 1s to %s", v, MaxBanFor)})
			return
		}
	}
	reason := strings.Join(strings.Fields(q.Get("reason")), " ")
	if reason == "" {
		reason = "banned by the administrator"
	}
	if len(reason) > maxReason {
		writeJSON(w, http.StatusBadRequest, errorBody{fmt.Sprintf("reason: longer than %d bytes", maxReason)})
		return
	}
	ctx := r.Context()
	// A manual ban keeps the strikes the abuse engine counted.
	strikes, err := st.Strikes(ctx, p)
	if err != nil {
		s.banFail(w, err)
		return
	}
	now := s.now()
	b := admission.Ban{Prefix: p, Until: now.Add(d), Reason: reason, Created: now, Strikes: strikes, Manual: true}
	if err := st.PutBan(ctx, b); err != nil {
		s.banFail(w, err)
		return
	}
	s.log.Info("admin: ban", "prefix", p, "until", b.Until, "reason", reason)
	writeJSON(w, http.StatusCreated, banInfo(b))
}

func (s *Server) banDelete(w http.ResponseWriter, r *http.Request) {
	st := s.banStore(w)
	if st == nil {
		return
	}
	p, err := ParseBanPrefix(r.URL.Query().Get("prefix"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{err.Error()})
		return
	}
	ok, err := st.DeleteBan(r.Context(), p)
	if err != nil {
		s.banFail(w, err)
		return
	}
	if !ok {
		writeJSON(w, http.StatusNotFound, errorBody{"no ban of " + p.String()})
		return
	}
	s.log.Info("admin: unban", "prefix", p)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) banFail(w http.ResponseWriter, err error) {
	s.log.Error("admin: ban request failed", "err", err)
	writeJSON(w, http.StatusInternalServerError, errorBody{err.Error()})
}

// ParseBanPrefix parses what `postern ban` takes: an address (banned as
// a /32 or /128) or a CIDR prefix, which is masked. Prefixes shorter
// than MinBanBits4 (IPv4) or MinBanBits6 (IPv6) are refused.
func ParseBanPrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR prefix", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR prefix", s)
		}
		a = a.Unmap()
		p = netip.PrefixFrom(a, a.BitLen())
	}
	p = p.Masked()
	if (p.Addr().Is4() && p.Bits() < MinBanBits4) || (p.Addr().Is6() && p.Bits() < MinBanBits6) {
		return netip.Prefix{}, fmt.Errorf("%s is too wide to ban by hand (at least /%d for IPv4, /%d for IPv6)", p, MinBanBits4, MinBanBits6)
	}
	return p, nil
}

// Bans returns the live bans.
func (c *Client) Bans(ctx context.Context) ([]BanInfo, error) {
	var out struct {
		Bans []BanInfo `json:"bans"`
	}
	if err := c.do(ctx, http.MethodGet, "/bans", &out); err != nil {
		return nil, fmt.Errorf("admin: list bans: %w", err)
	}
	return out.Bans, nil
}

// BanOf returns the ban that holds addr; the error wraps ErrNoBan when
// none does.
func (c *Client) BanOf(ctx context.Context, addr string) (BanInfo, error) {
	var b BanInfo
	err := c.do(ctx, http.MethodGet, "/bans/lookup?"+url.Values{"addr": {addr}}.Encode(), &b)
	if errors.Is(err, ErrNotFound) {
		err = ErrNoBan
	}
	if err != nil {
		return BanInfo{}, fmt.Errorf("admin: ban of %s: %w", addr, err)
	}
	return b, nil
}

// Ban bans prefix (an address or a CIDR prefix) for d (0 means
// DefaultBanFor) with reason, and returns the ban made.
func (c *Client) Ban(ctx context.Context, prefix string, d time.Duration, reason string) (BanInfo, error) {
	v := url.Values{"prefix": {prefix}, "reason": {reason}}
	if d > 0 {
		v.Set("for", d.String())
	}
	var b BanInfo
	if err := c.do(ctx, http.MethodPost, "/bans?"+v.Encode(), &b); err != nil {
		return BanInfo{}, fmt.Errorf("admin: ban %s: %w", prefix, err)
	}
	return b, nil
}

// Unban lifts the ban of exactly prefix; the error wraps ErrNoBan when
// there is none.
func (c *Client) Unban(ctx context.Context, prefix string) error {
	err := c.do(ctx, http.MethodDelete, "/bans?"+url.Values{"prefix": {prefix}}.Encode(), nil)
	if errors.Is(err, ErrNotFound) {
		err = ErrNoBan
	}
	if err != nil {
		return fmt.Errorf("admin: unban %s: %w", prefix, err)
	}
	return nil
}
