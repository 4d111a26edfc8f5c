package main

import (
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"postern/internal/config"
)

// TestReloadTrace: a reload takes the new [log] trace list, and keeps
// the one in use when the configuration does not load or the list does
// not parse.
func TestReloadTrace(t *testing.T) {
	t.Parallel()
	tr, err := newTrace(&config.Config{Log: config.Log{Trace: []string{"192.0.2.7"}}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.1")
	log := slog.New(slog.DiscardHandler)
	next := &config.Config{Log: config.Log{Trace: []string{"198.51.100.0/24"}}}
	if err := reloadTrace(log, func() (*config.Config, error) { return next, nil }, tr); err != nil {
		t.Fatal(err)
	}
	if tr.List().MatchAddr(a) || !tr.List().MatchAddr(b) {
		t.Errorf("the new list is not in use")
	}
	err = reloadTrace(log, func() (*config.Config, error) { return nil, errors.New("bad file") }, tr)
	if err == nil || !strings.Contains(err.Error(), "trace list kept: bad file") || !tr.List().MatchAddr(b) {
		t.Errorf("a config that does not load: %v", err)
	}
	bad := &config.Config{Log: config.Log{Trace: []string{"a b"}}}
	err = reloadTrace(log, func() (*config.Config, error) { return bad, nil }, tr)
	if err == nil || !strings.Contains(err.Error(), "trace list kept: log.trace") || !tr.List().MatchAddr(b) {
		t.Errorf("a bad entry: %v", err)
	}
	if _, err := newTrace(bad); err == nil {
		t.Errorf("newTrace took a bad entry")
	}
}
