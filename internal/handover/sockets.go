package handover

import (
	"fmt"
	"net"
)

// Sockets are the listening sockets a server serves on, by name, in the
// order they were added. A graceful restart passes them all to the new
// process under their names. The zero value is an empty set, ready to
// use; a Sockets is not safe for concurrent use.
type Sockets struct {
	names []string
	ls    map[string]net.Listener
}

// Add adds l under name, replacing (without closing) a listener already
// there.
func (s *Sockets) Add(name string, l net.Listener) {
	if s.ls == nil {
		s.ls = map[string]net.Listener{}
	}
	if _, ok := s.ls[name]; !ok {
		s.names = append(s.names, name)
	}
	s.ls[name] = l
}

// Get returns the listener named name, or nil.
func (s *Sockets) Get(name string) net.Listener { return s.ls[name] }

// Names returns the names of the sockets, in the order they were added.
func (s *Sockets) Names() []string { return append([]string(nil), s.names...) }

// Listen returns the socket named name, for functions that take a
// listen function; addr only names the socket in the error when there
// is none.
func (s *Sockets) Listen(name, addr string) (net.Listener, error) {
	if l, ok := s.ls[name]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("handover: no socket %s bound for %s", name, addr)
}

// Close closes every socket.
func (s *Sockets) Close() {
	for _, l := range s.ls {
		l.Close()
	}
}
