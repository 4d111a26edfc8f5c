package milter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Changes receives the changes a milter asks for at the end of a message
// (EndOfMessage), checked and in the order they came. A Chain buffers
// them and applies them only when the milter's final answer lets the
// message go on.
type Changes interface {
	// AddHeader appends a header field (SMFIR_ADDHEADER). value is as
	// Header describes it.
	AddHeader(name, value string)
	// ChangeHeader replaces the index-th (from 1) field named name, as
	// the milter saw the fields; an empty value deletes it
	// (SMFIR_CHGHEADER).
	ChangeHeader(index int, name, value string)
	// InsertHeader puts a field before the index-th field of the header
	// section (0 is the top), or at its end when there are fewer
	// (SMFIR_INSHEADER).
	InsertHeader(index int, name, value string)
	// ChangeFrom replaces the envelope sender, "" for the null sender;
	// args are ESMTP parameters (SMFIR_CHGFROM).
	ChangeFrom(from string, args []string)
	// AddRcpt adds an envelope recipient with its ESMTP parameters
	// (SMFIR_ADDRCPT, SMFIR_ADDRCPT_PAR).
	AddRcpt(rcpt string, args []string)
	// DeleteRcpt removes an envelope recipient (SMFIR_DELRCPT).
	DeleteRcpt(rcpt string)
	// Quarantine holds the message for review, with the milter's reason
	// (SMFIR_QUARANTINE).
	Quarantine(reason string)
	// ReplaceBody appends a chunk of the new body (SMFIR_REPLBODY); the
	// chunks of one milter come in a row. An error stops the exchange:
	// it is a local failure (a full disk), not the milter's.
	ReplaceBody(chunk []byte) error
}

// LocalError is a failure of Changes.ReplaceBody: the MTA's own, which
// no default action covers.
type LocalError struct{ Err error }

func (e *LocalError) Error() string { return "milter: replacing the body: " + e.Err.Error() }
func (e *LocalError) Unwrap() error { return e.Err }

// EndOfMessage sends the end of the message and reads the milter's
// changes, handing each to ch, up to its final answer. A change the
// milter did not negotiate, or a malformed one, is a protocol error.
// An error of ch.ReplaceBody is returned as a *LocalError.
func (c *Conn) EndOfMessage(macros []Macro, ch Changes) (Response, error) {
	if c.broken != nil {
		return Response{}, c.broken
	}
	c.skip = 0
	done := c.arm(c.m.ContentTimeout)
	defer done()
	c.wbuf = c.wbuf[:0]
	c.appendMacros(cmdEOM, symEOM, macros)
	c.wbuf = appendPacket(c.wbuf, cmdEOM)
	if _, err := c.nc.Write(c.wbuf); err != nil {
		return Response{}, c.fail(StageEOM, err)
	}
	bodyDone := false // a change other than the body came after body chunks
	bodyStarted := false
	for {
		p, err := c.read()
		if err != nil {
			return Response{}, c.fail(StageEOM, err)
		}
		if p.code == repReplBody {
			if c.actions&actChangeBody == 0 || bodyDone {
				return Response{}, c.fail(StageEOM, fmt.Errorf("%w: SMFIR_REPLBODY not allowed here", errProtocol))
			}
			bodyStarted = true
			if err := ch.ReplaceBody(p.data); err != nil {
				if errors.Is(err, errProtocol) { // a body Postern refuses
					return Response{}, c.fail(StageEOM, err)
				}
				c.fail(StageEOM, fmt.Errorf("the MTA failed: %w", err))
				return Response{}, &LocalError{err}
			}
			continue
		}
		bodyDone = bodyStarted
		switch p.code {
		case repProgress:
			if len(p.data) != 0 {
				return Response{}, c.fail(StageEOM, fmt.Errorf("%w: SMFIR_PROGRESS with data", errProtocol))
			}
			continue
		case repAddHeader, repChgHeader, repInsHeader, repChgFrom, repAddRcpt, repAddRcptPar, repDelRcpt, repQuarantine:
			if err := c.change(p, ch); err != nil {
				return Response{}, c.fail(StageEOM, err)
			}
			continue
		}
		r, _, err := parseResponse(p)
		if err != nil {
			return Response{}, c.fail(StageEOM, err)
		}
		return r, nil
	}
}

// change checks one change request and hands it to ch.
func (c *Conn) change(p packet, ch Changes) error {
	need := map[byte]uint32{
		repAddHeader: actAddHeaders, repChgHeader: actChgHeaders, repInsHeader: actAddHeaders,
		repChgFrom: actChangeFrom, repAddRcpt: actAddRcpt, repAddRcptPar: actAddRcptPar,
		repDelRcpt: actDelRcpt, repQuarantine: actQuarantine,
	}[p.code]
	if c.actions&need == 0 {
		return fmt.Errorf("%w: change %q that the milter did not negotiate", errProtocol, p.code)
	}
	data := p.data
	index := 0
	if p.code == repChgHeader || p.code == repInsHeader {
		if len(data) < 4 {
			return fmt.Errorf("%w: change %q without its index", errProtocol, p.code)
		}
		n := binary.BigEndian.Uint32(data)
		if n > 1<<20 {
			return fmt.Errorf("%w: header index %d", errProtocol, n)
		}
		index, data = int(n), data[4:]
	}
	strs, err := cstrings(data)
	if err != nil {
		return err
	}
	switch p.code {
	case repAddHeader, repChgHeader, repInsHeader:
		if len(strs) != 2 {
			return fmt.Errorf("%w: header change %q with %d strings", errProtocol, p.code, len(strs))
		}
		name, value := strs[0], strs[1]
		if err := checkFieldName(name); err != nil {
			return err
		}
		if value == "" && p.code != repChgHeader {
			return fmt.Errorf("%w: empty value for header field %q", errProtocol, name)
		}
		if err := checkFieldValue(value); err != nil {
			return fmt.Errorf("%w: header field %q: %v", errProtocol, name, err)
		}
		if !c.leadingSpace() && value != "" {
			value = " " + value // Sendmail puts the space after the colon back
		}
		switch p.code {
		case repAddHeader:
			ch.AddHeader(name, value)
		case repChgHeader:
			if index == 0 {
				index = 1 // Sendmail 8 takes index 0 as 1
			}
			ch.ChangeHeader(index, name, value)
		default:
			ch.InsertHeader(index, name, value)
		}
	case repChgFrom, repAddRcptPar:
		if len(strs) < 1 || len(strs) > 2 {
			return fmt.Errorf("%w: change %q with %d strings", errProtocol, p.code, len(strs))
		}
		addr, err := envelopeAddress(strs[0])
		if err != nil {
			return err
		}
		var args []string
		if len(strs) == 2 {
			args = strings.Fields(strs[1])
		}
		if p.code == repChgFrom {
			ch.ChangeFrom(addr, args)
		} else {
			ch.AddRcpt(addr, args)
		}
	case repAddRcpt, repDelRcpt, repQuarantine:
		if len(strs) != 1 || strs[0] == "" {
			return fmt.Errorf("%w: change %q wants one string", errProtocol, p.code)
		}
		if p.code == repQuarantine {
			if err := checkText(strs[0]); err != nil {
				return fmt.Errorf("%w: quarantine reason: %v", errProtocol, err)
			}
			ch.Quarantine(strs[0])
			return nil
		}
		addr, err := envelopeAddress(strs[0])
		if err != nil {
			return err
		}
		if p.code == repAddRcpt {
			ch.AddRcpt(addr, nil)
		} else {
			ch.DeleteRcpt(addr)
		}
	}
	return nil
}

// envelopeAddress strips the angle brackets milters put around
// addresses. Checking the address is the caller's: the MTA knows its
// syntax rules (SMTPUTF8).
func envelopeAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = s[1 : len(s)-1]
	}
	if len(s) > 256 || strings.ContainsAny(s, "<> \t\r\n") {
		return "", fmt.Errorf("%w: bad envelope address %q", errProtocol, s)
	}
	return s, nil
}

// checkFieldName checks a header field name: printable ASCII but the
// colon, 1 to 200 bytes (RFC 5322 §3.6.8 ftext).
func checkFieldName(name string) error {
	if name == "" || len(name) > 200 {
		return fmt.Errorf("%w: header field name of %d bytes", errProtocol, len(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return fmt.Errorf("%w: bad header field name %q", errProtocol, name)
		}
	}
	return nil
}

// maxFieldValue bounds one header field value from a milter.
const maxFieldValue = 64 << 10

// checkFieldValue checks a header field value from a milter: lines
// separated by "\n" or "\r\n", each continuation starting with SP or
// HTAB and holding more than white space (an empty line would end the
// header section), no bare CR, no control character but HTAB, lines of
// at most 998 bytes (RFC 5322 §2.1.1), 64 KiB in all.
func checkFieldValue(v string) error {
	if len(v) > maxFieldValue {
		return fmt.Errorf("value of %d bytes (the limit is %d)", len(v), maxFieldValue)
	}
	for i, line := range strings.Split(strings.ReplaceAll(v, "\r\n", "\n"), "\n") {
		if i > 0 && (line == "" || line[0] != ' ' && line[0] != '\t' || strings.TrimLeft(line, " \t") == "") {
			return fmt.Errorf("continuation line %d is not folded white space and text", i)
		}
		if len(line) > 998 {
			return fmt.Errorf("line of %d bytes", len(line))
		}
		if err := checkText(line); err != nil {
			return err
		}
	}
	return nil
}

// checkText refuses control characters but HTAB (CR and LF included).
func checkText(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return fmt.Errorf("control character 0x%02x", c)
		}
	}
	return nil
}
