package handover

import (
	"log/slog"
	"net"
)

// Prebound holds the listeners a server got before it opened anything
// else: passed by systemd or by the old process of a graceful restart,
// or bound as root before the privilege drop. A Prebound is not safe
// for concurrent use.
type Prebound struct {
	named   map[string]net.Listener // by listener name
	unnamed []net.Listener          // passed without a name we know
	from    string                  // who passed them: "systemd" or "the old process"
}

// NewPrebound sorts the passed sockets: a socket whose name known
// reports true serves the listener of that name (the first of several
// with one name); the others serve the listener on their port (Listen).
func NewPrebound(passed Passed, known func(name string) bool) *Prebound {
	p := &Prebound{named: map[string]net.Listener{}, from: passed.From}
	for _, s := range passed.Sockets {
		if known(s.Name) && p.named[s.Name] == nil {
			p.named[s.Name] = s.Listener
		} else {
			p.unnamed = append(p.unnamed, s.Listener)
		}
	}
	return p
}

// Has reports whether a listener is held under name.
func (p *Prebound) Has(name string) bool {
	_, ok := p.named[name]
	return ok
}

// Hold keeps l under name, for Listen to return (a listener bound
// before the privilege drop).
func (p *Prebound) Hold(name string, l net.Listener) { p.named[name] = l }

// Listen returns the listener for name at addr: the one held under that
// name, or without one a passed socket on the same port, or a new one
// bound now. Each listener held is returned once.
func (p *Prebound) Listen(name, addr string) (net.Listener, error) {
	if l, ok := p.named[name]; ok {
		delete(p.named, name)
		return l, nil
	}
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "0" {
		for i, l := range p.unnamed {
			if _, lp, _ := net.SplitHostPort(l.Addr().String()); lp == port {
				p.unnamed = append(p.unnamed[:i], p.unnamed[i+1:]...)
				return l, nil
			}
		}
	}
	return net.Listen("tcp", addr)
}

// CloseUnused closes, with a warning each, the listeners nobody took.
func (p *Prebound) CloseUnused(log *slog.Logger) {
	for name, l := range p.named {
		log.Warn("socket passed by "+p.from+" matches no listener: closed", "name", name, "address", l.Addr().String())
		l.Close()
	}
	for _, l := range p.unnamed {
		log.Warn("socket passed by "+p.from+" matches no listener: closed", "address", l.Addr().String())
		l.Close()
	}
	p.named, p.unnamed = nil, nil
}

// CloseAll closes every listener held, on a failed start.
func (p *Prebound) CloseAll() {
	for _, l := range p.named {
		l.Close()
	}
	for _, l := range p.unnamed {
		l.Close()
	}
	p.named, p.unnamed = nil, nil
}
