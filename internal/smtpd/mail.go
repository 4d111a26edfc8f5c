package smtpd

import (
	"slices"
	"strconv"
	"strings"

	"postern/internal/addrkey"
	"postern/internal/smtp"
)

// cmdMail handles MAIL FROM (RFC 5321 §4.1.1.2).
func (s *session) cmdMail(arg string) {
	switch {
	case !s.greeted:
		s.fail("sequence", errSeq("Send EHLO first"))
		return
	case s.srv.Role.submission() && s.authUser == "":
		// RFC 6409 §4.3: submission needs authentication.
		s.fail("auth_required", &smtp.Error{Code: 530, Enhanced: "5.7.0", Message: "Authentication required"})
		return
	case s.tx.active:
		s.fail("sequence", errSeq("Nested MAIL command"))
		return
	}
	path, params, err := smtp.ParseMailFrom(arg, true)
	if err != nil {
		s.failErr("syntax", err)
		return
	}
	tx := transaction{body: "7BIT", rcpts: s.tx.rcpts[:0]}
	if e := s.mailParams(params, &tx); e != nil {
		s.fail("params", e)
		return
	}
	if !path.Null {
		if e := checkDomain(path.Addr.Domain, "5.1.7", "sender"); e != nil {
			s.fail("syntax", e)
			return
		}
	}
	if path.Null {
		if s.srv.Role.submission() {
			s.fail("sender_denied", &smtp.Error{Code: 553, Enhanced: "5.7.1", Message: "Null sender not allowed"})
			return
		}
	} else {
		tx.from = path.Addr.String()
	}
	if s.srv.Role.submission() {
		ok, err := s.srv.Directory.MaySendAs(s.ctx, s.authUser, tx.from)
		if err != nil {
			s.fail("temp_error", &smtp.Error{Code: 451, Enhanced: "4.3.0", Message: "Local error, try again", Reason: "MaySendAs: " + err.Error()})
			return
		}
		if !ok {
			s.fail("sender_denied", &smtp.Error{Code: 553, Enhanced: "5.7.1", Message: "Sender address not owned by user",
				Reason: "user " + s.authUser + " may not send as " + tx.from})
			return
		}
	}
	if e := s.milterMail(tx.from, params); e != nil { // milter.go
		s.fail("milter", e)
		return
	}
	tx.active = true
	s.tx = tx
	s.reply(250, "2.1.0", "OK")
}

// mailParams checks MAIL's ESMTP parameters and records them in tx.
func (s *session) mailParams(params smtp.Params, tx *transaction) *smtp.Error {
	if len(params) == 0 {
		return nil
	}
	if !s.esmtp {
		// RFC 5321 §4.1.1.11: parameters only after EHLO.
		return &smtp.Error{Code: 555, Enhanced: "5.5.4", Message: "MAIL parameters not recognized (use EHLO)"}
	}
	// Known parameters first, in a fixed order, so the reply does not
	// depend on map order.
	if v, ok := params["SIZE"]; ok { // RFC 1870
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errSyntax("Invalid SIZE parameter")
		}
		if s.lim.MaxMessageSize > 0 && n > s.lim.MaxMessageSize {
			return &smtp.Error{Code: 552, Enhanced: "5.3.4", Message: "Message size exceeds fixed maximum message size"}
		}
	}
	if v, ok := params["BODY"]; ok { // RFC 6152
		switch strings.ToUpper(v) {
		case "7BIT":
			tx.body = "7BIT"
		case "8BITMIME":
			tx.body = "8BITMIME"
		default:
			return errSyntax("Invalid BODY parameter")
		}
	}
	if v, ok := params["SMTPUTF8"]; ok { // RFC 6531 §3.4
		if v != "" {
			return errSyntax("SMTPUTF8 takes no value")
		}
		tx.smtputf8 = true
	}
	if v, ok := params["REQUIRETLS"]; ok {
		// RFC 8689 §4.1: only where EHLO offered it, that is after TLS
		// on a submission listener; the parameter has no value.
		if !s.offersRequireTLS() {
			return &smtp.Error{Code: 555, Enhanced: "5.5.4", Message: "MAIL parameter not recognized", Reason: "REQUIRETLS not offered"}
		}
		if v != "" {
			return errSyntax("REQUIRETLS takes no value")
		}
		tx.reqTLS = true
	}
	if e := tx.dsn.mailParams(params); e != nil { // dsn.go
		return e
	}
	for k := range params {
		switch k {
		case "SIZE", "BODY", "SMTPUTF8", "REQUIRETLS", "RET", "ENVID":
		default:
			// RFC 5321 §4.1.1.11
			return &smtp.Error{Code: 555, Enhanced: "5.5.4", Message: "MAIL parameter not recognized", Reason: "parameter " + k}
		}
	}
	return nil
}

// offersRequireTLS reports whether the session advertises REQUIRETLS:
// only on submission roles and only once TLS is active (RFC 8689 §4).
func (s *session) offersRequireTLS() bool {
	return s.srv.Role.submission() && s.tlsState != nil
}

// rcptOvershoot is how many recipients past Limits.MaxRecipients a
// transaction may send before each further one counts as an error.
const rcptOvershoot = 1000

// cmdRcpt handles RCPT TO (RFC 5321 §4.1.1.3).
func (s *session) cmdRcpt(arg string) {
	switch {
	case !s.greeted:
		s.fail("sequence", errSeq("Send EHLO first"))
		return
	case !s.tx.active:
		s.fail("sequence", errSeq("Need MAIL command"))
		return
	case s.lim.MaxRecipients > 0 && len(s.tx.rcpts) >= s.lim.MaxRecipients:
		// RFC 5321 §4.5.3.1.10: 452 for each recipient past the limit;
		// the client sends them again in another transaction. They are
		// no error of the client's, up to rcptOvershoot of them (as
		// Postfix's smtpd_recipient_overshoot_limit).
		s.tx.refused++
		s.tx.excess++
		e := &smtp.Error{Code: 452, Enhanced: "4.5.3", Message: "Too many recipients"}
		if s.tx.excess > rcptOvershoot {
			s.fail("too_many_rcpts", e)
		} else {
			s.refuse("too_many_rcpts", e)
		}
		return
	}
	path, params, err := smtp.ParseRcptTo(arg, s.tx.smtputf8)
	if err != nil {
		s.tx.refused++
		s.failErr("syntax", err)
		return
	}
	rd, e := s.rcptParams(params) // dsn.go
	if e != nil {
		s.tx.refused++
		s.fail("params", e)
		return
	}
	if !path.Postmaster {
		if e := checkDomain(path.Addr.Domain, "5.1.3", "recipient"); e != nil {
			s.tx.refused++
			s.fail("syntax", e)
			return
		}
	}
	addr, domain := path.Addr.String(), path.Addr.Domain
	if path.Postmaster {
		// RFC 5321 §4.5.1: the bare Postmaster goes to the configured
		// address. In another domain it is relayed there; in a local
		// one it must reach someone, like any local recipient.
		addr = s.srv.postmaster
		domain = addrkey.DomainOf(addr)
	}
	if !path.Postmaster || s.srv.Directory.IsLocalDomain(domain) {
		if e := s.checkRecipient(domain, addr); e != nil {
			s.tx.refused++
			s.fail(e.label, e.err)
			return
		}
	}
	if e := s.milterRcpt(addr, params); e != nil { // milter.go
		s.tx.refused++
		s.fail("milter", e)
		return
	}
	if !slices.Contains(s.tx.rcpts, addr) {
		s.tx.rcpts = append(s.tx.rcpts, addr)
		s.tx.dsn.add(addr, rd)
	}
	s.reply(250, "2.1.5", "OK")
}

// checkDomain refuses a domain that is not a valid IDNA2008 name
// (addrkey.Domain): the parser lets U-labels through as letters, marks
// and digits, but one such as "wor\u212A.test" (KELVIN SIGN) is no
// name, and folded as strings.ToLower does it would pass for work.test.
// RFC 6531 §3.3 wants U-labels (RFC 5890 §2.3.2.1).
func checkDomain(domain, enhanced, what string) *smtp.Error {
	if _, err := addrkey.Domain(domain); err != nil {
		return &smtp.Error{Code: 501, Enhanced: enhanced, Message: "Bad " + what + " address syntax: domain is not a valid IDNA name",
			Reason: err.Error()}
	}
	return nil
}

// labeledError is a reply with its metric label.
type labeledError struct {
	label string
	err   *smtp.Error
}

// checkRecipient applies the relay policy: on mx only existing
// recipients in local domains; on submission any non-local recipient
// (the user is authenticated) and existing local ones.
func (s *session) checkRecipient(domain, addr string) *labeledError {
	local := s.srv.Directory.IsLocalDomain(domain)
	if !local {
		if s.srv.Role.submission() {
			if strings.HasPrefix(domain, "[") {
				// RFC 5321 §4.1.3: an address literal names a host, not
				// a domain with MX records: refused here rather than
				// accepted and bounced.
				return &labeledError{"address_literal", &smtp.Error{Code: 550, Enhanced: "5.1.2",
					Message: "Address literals are not accepted as recipients: use a domain name", Reason: "address literal " + domain}}
			}
			return nil
		}
		return &labeledError{"relay_denied", &smtp.Error{Code: 550, Enhanced: "5.7.1", Message: "Relaying denied", Reason: "domain " + domain + " not local"}}
	}
	ok, err := s.srv.Directory.RecipientExists(s.ctx, addr)
	if err != nil {
		return &labeledError{"temp_error", &smtp.Error{Code: 451, Enhanced: "4.3.0", Message: "Local error, try again", Reason: "RecipientExists: " + err.Error()}}
	}
	if !ok {
		return &labeledError{"user_unknown", &smtp.Error{Code: 550, Enhanced: "5.1.1", Message: "User unknown", Reason: "no recipient " + addr}}
	}
	return nil
}
