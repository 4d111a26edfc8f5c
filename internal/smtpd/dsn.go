package smtpd

import (
	"bytes"
	"errors"

	"postern/internal/smtp"
)

// The DSN extension (RFC 3461): the parameters of MAIL and RCPT that ask
// for delivery status notifications. The session parses them and puts
// them in the envelope; the queue honours them.

// txDSN is what a transaction's MAIL and RCPTs said about notifications.
type txDSN struct {
	ret   string                  // RET, "FULL" or "HDRS"; "" when none
	envID string                  // ENVID, decoded; "" when none
	rcpts map[string]smtp.RcptDSN // NOTIFY and ORCPT by recipient; nil when none
}

// mailParams checks MAIL's RET and ENVID (RFC 3461 §4.3, §4.4) and
// records them; a malformed value is 501 5.5.4. The duplicate of a
// parameter never gets here (the command parser refuses it).
func (d *txDSN) mailParams(params smtp.Params) *smtp.Error {
	if v, ok := params["RET"]; ok {
		ret, err := smtp.ParseRet(v)
		if err != nil {
			return dsnReply(err)
		}
		d.ret = ret
	}
	if v, ok := params["ENVID"]; ok {
		id, err := smtp.ParseEnvID(v)
		if err != nil {
			return dsnReply(err)
		}
		d.envID = id
	}
	return nil
}

// rcptParams checks RCPT's parameters: NOTIFY and ORCPT (RFC 3461 §4.1,
// §4.2), after EHLO only; anything else is 555 (RFC 5321 §4.1.1.11), a
// malformed value 501 5.5.4.
func (s *session) rcptParams(params smtp.Params) (smtp.RcptDSN, *smtp.Error) {
	var rd smtp.RcptDSN
	if len(params) == 0 {
		return rd, nil
	}
	if !s.esmtp {
		return rd, &smtp.Error{Code: 555, Enhanced: "5.5.4", Message: "RCPT parameters not recognized (use EHLO)"}
	}
	// The known ones first, in a fixed order, so the reply does not
	// depend on map order.
	if v, ok := params["NOTIFY"]; ok {
		n, err := smtp.ParseNotify(v)
		if err != nil {
			return rd, dsnReply(err)
		}
		rd.Notify = n
	}
	if v, ok := params["ORCPT"]; ok {
		o, err := smtp.ParseORcpt(v)
		if err != nil {
			return rd, dsnReply(err)
		}
		rd.ORcpt = o
	}
	for k := range params {
		if k != "NOTIFY" && k != "ORCPT" {
			return rd, &smtp.Error{Code: 555, Enhanced: "5.5.4", Message: "RCPT parameter not recognized", Reason: "parameter " + k}
		}
	}
	return rd, nil
}

// add records the parameters of the accepted recipient rcpt, if it gave
// any.
func (d *txDSN) add(rcpt string, rd smtp.RcptDSN) {
	if rd == (smtp.RcptDSN{}) {
		return
	}
	if d.rcpts == nil {
		d.rcpts = make(map[string]smtp.RcptDSN)
	}
	d.rcpts[rcpt] = rd
}

// dsnLineExtra is how much longer than the command line limit a MAIL or
// RCPT line may be: RFC 3461 §5 adds 110 characters to MAIL for RET and
// ENVID, 500 to RCPT for NOTIFY and ORCPT.
func dsnLineExtra(line []byte) int {
	if len(line) < 5 || line[4] != ' ' {
		return 0
	}
	switch verb := line[:4]; {
	case bytes.EqualFold(verb, []byte("MAIL")):
		return smtp.DSNMailExtra
	case bytes.EqualFold(verb, []byte("RCPT")):
		return smtp.DSNRcptExtra
	}
	return 0
}

// dsnReply returns the reply of a DSN parameter parser's error, which is
// an *smtp.Error (501 5.5.4).
func dsnReply(err error) *smtp.Error {
	var e *smtp.Error
	if errors.As(err, &e) {
		return e
	}
	return errSyntax("Bad DSN parameter")
}
