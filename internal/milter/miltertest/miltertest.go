// Package miltertest is a small milter (the server side of the Sendmail
// milter protocol) for tests: it negotiates what the test says, records
// every event it gets, and answers each with what the test's Handler
// returns. It covers what the real milters the tests run (rspamd,
// OpenDKIM) do not: quarantine, envelope changes, body replacement,
// header insertion at an index, silence for timeouts, broken packets.
package miltertest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"postern/internal/testkit"
)

// Event is one command the milter got from the MTA.
type Event struct {
	// Code is the command: 'C' connect, 'H' helo, 'M' mail, 'R' rcpt,
	// 'T' data, 'L' header, 'N' end of header, 'B' body, 'E' end of
	// message, 'A' abort, 'Q' quit.
	Code byte
	// Data is the command's data as sent (nil for a body chunk when the
	// Server's DiscardBody is set).
	Data []byte
	// Size is the length of the command's data.
	Size int
	// Args are Data's NUL-terminated strings (none for 'B').
	Args []string
	// Macros are the macros sent for this command (SMFIC_MACRO).
	Macros map[string]string
	// Conn numbers the MTA's connection, from 1.
	Conn int
}

// Packet is one packet the milter sends.
type Packet struct {
	Code byte
	Data []byte
	// Hang, when set, sends nothing more on the connection: the milter
	// stays silent until the MTA gives up.
	Hang bool
	// Raw, when not nil, is written as it is instead (a broken packet).
	Raw []byte
	// Close closes the connection after the packet.
	Close bool
}

// Server is a milter on a loopback TCP port. Set its fields before
// Start.
type Server struct {
	// Version, Actions and Protocol answer option negotiation; zero
	// Version means 6, zero Actions every action (0x1ff).
	Version, Actions, Protocol uint32
	// OptNeg, when not nil, is sent instead of the negotiation answer.
	OptNeg *Packet
	// Handler answers an event that wants an answer; nil, or no packets,
	// means continue ('c'). Events without an answer ('A', 'Q', and
	// those the negotiation said go unanswered) are recorded only.
	Handler func(ev *Event) []Packet
	// DiscardBody keeps the body chunks out of the recorded events (only
	// their Size is kept), for tests of large messages.
	DiscardBody bool

	t        testing.TB
	l        net.Listener
	mu       sync.Mutex
	events   []Event
	conns    int
	wg       sync.WaitGroup
	hang     chan struct{}
	hangOnce sync.Once
}

// Start listens on 127.0.0.1 and serves until the test ends.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.t = t
	s.hang = make(chan struct{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.l = l
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
}

// Close stops the server and waits for its connections.
func (s *Server) Close() {
	s.l.Close()
	s.hangOnce.Do(func() { close(s.hang) })
	s.wg.Wait()
}

// Address returns the milter's address as Postfix writes it.
func (s *Server) Address() string { return "inet:" + s.l.Addr().String() }

// Events returns the events so far.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// WaitCodes waits until the codes of the events end with suffix: the
// milter records them in its own goroutines.
func (s *Server) WaitCodes(t testing.TB, suffix string) {
	t.Helper()
	testkit.WaitFor(t, "milter events ending with "+suffix, func() bool { return strings.HasSuffix(s.Codes(), suffix) })
}

// Codes returns the codes of the events so far, as a string ("CHMRTLNBE").
func (s *Server) Codes() string {
	var b strings.Builder
	for _, e := range s.Events() {
		b.WriteByte(e.Code)
	}
	return b.String()
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		n := s.conns
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.conn(c, n)
		}()
	}
}

// The SMFIP_NR_* options and the command each covers.
var noReply = map[byte]uint32{'C': 1 << 12, 'H': 1 << 13, 'M': 1 << 14, 'R': 1 << 15, 'T': 1 << 16, 'L': 1 << 7, 'N': 1 << 18, 'B': 1 << 19}

func (s *Server) conn(c net.Conn, n int) {
	defer c.Close()
	go func() { <-s.hang; c.Close() }()
	br := bufio.NewReader(c)
	macros := map[string]string{}
	for {
		code, data, err := readPacket(br)
		if err != nil {
			return
		}
		switch code {
		case 'O':
			if !s.write(c, s.optneg()) {
				return
			}
			continue
		case 'D':
			if len(data) > 0 {
				args := cstrings(data[1:])
				for i := 0; i+1 < len(args); i += 2 {
					macros[args[i]] = args[i+1]
				}
			}
			continue
		}
		ev := Event{Code: code, Size: len(data), Macros: macros, Conn: n}
		if code != 'B' {
			ev.Args = cstrings(data)
		}
		if code != 'B' || !s.DiscardBody {
			ev.Data = append([]byte(nil), data...)
		}
		macros = map[string]string{}
		s.mu.Lock()
		s.events = append(s.events, ev)
		s.mu.Unlock()
		if code == 'Q' {
			return
		}
		if code == 'A' || s.Protocol&noReply[code] != 0 {
			continue
		}
		var out []Packet
		if s.Handler != nil {
			out = s.Handler(&ev)
		}
		if len(out) == 0 {
			out = []Packet{{Code: 'c'}}
		}
		for _, p := range out {
			if !s.write(c, p) {
				return
			}
		}
	}
}

func (s *Server) optneg() Packet {
	if s.OptNeg != nil {
		return *s.OptNeg
	}
	v, a := s.Version, s.Actions
	if v == 0 {
		v = 6
	}
	if a == 0 {
		a = 0x1ff
	}
	d := binary.BigEndian.AppendUint32(nil, v)
	d = binary.BigEndian.AppendUint32(d, a)
	d = binary.BigEndian.AppendUint32(d, s.Protocol)
	return Packet{Code: 'O', Data: d}
}

// write sends p; false means stop.
func (s *Server) write(c net.Conn, p Packet) bool {
	if p.Hang {
		<-s.hang
		return false
	}
	b := p.Raw
	if b == nil {
		b = binary.BigEndian.AppendUint32(nil, uint32(len(p.Data)+1))
		b = append(append(b, p.Code), p.Data...)
	}
	_, err := c.Write(b)
	return err == nil && !p.Close
}

func readPacket(r io.Reader) (byte, []byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n == 0 || n > 1<<20 {
		return 0, nil, io.ErrUnexpectedEOF
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return b[0], b[1:], nil
}

func cstrings(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return append(out, string(b))
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out
}

// Replies for Handlers.
var (
	Continue = Packet{Code: 'c'}
	Accept   = Packet{Code: 'a'}
	Reject   = Packet{Code: 'r'}
	Tempfail = Packet{Code: 't'}
	Discard  = Packet{Code: 'd'}
	Skip     = Packet{Code: 's'}
	Progress = Packet{Code: 'p'}
	Hang     = Packet{Hang: true}
)

func cstr(s ...string) []byte {
	var b []byte
	for _, x := range s {
		b = append(append(b, x...), 0)
	}
	return b
}

// ReplyCode is SMFIR_REPLYCODE with reply, such as "550 5.7.1 No".
func ReplyCode(reply string) Packet { return Packet{Code: 'y', Data: cstr(reply)} }

// AddHeader is SMFIR_ADDHEADER.
func AddHeader(name, value string) Packet { return Packet{Code: 'h', Data: cstr(name, value)} }

// ChangeHeader is SMFIR_CHGHEADER of the index-th field named name; an
// empty value deletes it.
func ChangeHeader(index uint32, name, value string) Packet {
	return Packet{Code: 'm', Data: append(binary.BigEndian.AppendUint32(nil, index), cstr(name, value)...)}
}

// InsertHeader is SMFIR_INSHEADER at index (0 is the top).
func InsertHeader(index uint32, name, value string) Packet {
	return Packet{Code: 'i', Data: append(binary.BigEndian.AppendUint32(nil, index), cstr(name, value)...)}
}

// ChangeFrom is SMFIR_CHGFROM.
func ChangeFrom(addr string) Packet { return Packet{Code: 'e', Data: cstr(addr)} }

// AddRcpt is SMFIR_ADDRCPT.
func AddRcpt(addr string) Packet { return Packet{Code: '+', Data: cstr(addr)} }

// DeleteRcpt is SMFIR_DELRCPT.
func DeleteRcpt(addr string) Packet { return Packet{Code: '-', Data: cstr(addr)} }

// Quarantine is SMFIR_QUARANTINE.
func Quarantine(reason string) Packet { return Packet{Code: 'q', Data: cstr(reason)} }

// ReplaceBody is SMFIR_REPLBODY: the body b, in chunks of at most
// 65535 bytes, as libmilter sends it.
func ReplaceBody(b []byte) []Packet {
	var out []Packet
	for len(b) > 0 {
		n := min(len(b), 65535)
		out = append(out, Packet{Code: 'b', Data: b[:n]})
		b = b[n:]
	}
	return out
}

// DownAddress returns the address, as Postfix writes it, of a loopback
// port where nothing listens: connecting there is refused at once.
func DownAddress(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "inet:" + l.Addr().String()
	l.Close()
	return addr
}

// At returns a Handler that answers the events of code with out, and
// the others with continue.
func At(code byte, out ...Packet) func(ev *Event) []Packet {
	return func(ev *Event) []Packet {
		if ev.Code == code {
			return out
		}
		return nil
	}
}
