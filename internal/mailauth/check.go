package mailauth

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"postern/internal/dns"
	"postern/internal/smtp"
)

// QuarantineField is the header field the Checker puts on top of a
// message that DMARC quarantines; local delivery files a message whose
// first field is this one into the mailbox's Junk folder. Incoming copies
// of the field are removed.
const QuarantineField = "X-Postern-Quarantine"

// CheckerOptions configures a Checker.
type CheckerOptions struct {
	// Resolver does every DNS lookup. Required.
	Resolver dns.Resolver
	// Hostname is the authserv-id of our Authentication-Results (RFC
	// 8601 §2.5), normally the host name. Required.
	Hostname string
	// IsLocalDomain reports whether mail for a domain is delivered here;
	// mail claiming such a domain in From or MAIL FROM must pass SPF or
	// DKIM for it. Nil means no local domain.
	IsLocalDomain func(domain string) bool
	// ReportOnly reports DMARC results in Authentication-Results but
	// never rejects or quarantines for DMARC. (Spoofing of local domains
	// is refused all the same.)
	ReportOnly bool
	// MaxSignatures bounds the DKIM signatures verified; 0 verifies none
	// (see VerifyOptions).
	MaxSignatures int
	// Now is the clock (DKIM x=); nil means time.Now.
	Now func() time.Time
	// Rand returns a number in [0, n) for DMARC pct= sampling (RFC 7489
	// §6.6.4); nil means math/rand/v2.IntN.
	Rand func(n int) int
	// Logger gets one line per message checked; nil means slog.Default().
	Logger *slog.Logger
	// Metrics counts the results and policy actions (NewCheckMetrics);
	// nil counts into a set registered nowhere.
	Metrics *CheckMetrics
}

// Checker authenticates mail received on port 25: SPF, DKIM, DMARC,
// Authentication-Results and policy. It is safe for concurrent use.
type Checker struct {
	o CheckerOptions
}

// NewChecker returns a Checker, or an error when a required option is
// missing.
func NewChecker(o CheckerOptions) (*Checker, error) {
	if o.Resolver == nil {
		return nil, errors.New("mailauth: CheckerOptions.Resolver is nil")
	}
	if o.Hostname == "" {
		return nil, errors.New("mailauth: CheckerOptions.Hostname is empty")
	}
	o.Hostname = strings.ToLower(strings.TrimSuffix(o.Hostname, "."))
	if o.IsLocalDomain == nil {
		o.IsLocalDomain = func(string) bool { return false }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.IntN
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewCheckMetrics(nil)
	}
	return &Checker{o: o}, nil
}

// Message is what the Checker looks at: the SMTP client and envelope and
// the message.
type Message struct {
	Remote   netip.Addr // the client's address
	Helo     string     // the EHLO/HELO name
	MailFrom string     // the reverse-path, "" for the null sender
	// Header is the header section with CRLF line endings and the empty
	// line that ends it (our Received field on top is allowed), and
	// Body the rest of the message, which may be in a file: it is read
	// as a stream, for DKIM. Neither is modified or retained.
	Header []byte
	Body   smtp.Body
	// Data, when Header is nil, is the whole message in memory instead.
	Data []byte
	// Log, when not nil, gets the "mail authentication" event instead of
	// CheckerOptions.Logger: the SMTP session's logger with the message
	// id, so the event carries listener, session and id.
	Log *slog.Logger
}

// parts returns the header section and the body of m.
func (m *Message) parts() ([]byte, smtp.Body) {
	if m.Header != nil {
		return m.Header, m.Body
	}
	_, end := splitHeader(m.Data)
	return m.Data[:end], smtp.BodyBytes(m.Data[end:])
}

// Verdict is what the Checker decided. Its fields map onto
// smtpd.FilterResult.
type Verdict struct {
	// Reject refuses the message at the end of DATA when non-nil.
	Reject *smtp.Error
	// Header, when non-nil, replaces the header section of the
	// message: it is the header section without Authentication-Results
	// fields that claim our authserv-id (RFC 8601 §5) and without
	// QuarantineField. The body is unchanged.
	Header []byte
	// Prepend holds the fields to add on top: QuarantineField when
	// quarantined, then Authentication-Results.
	Prepend []byte
	// Quarantine is set when DMARC quarantines the message.
	Quarantine bool
	// Results are the check results.
	Results Results
}

// Check authenticates m. An error is returned only for a local failure;
// DNS failures are results (temperror), bad signatures too.
func (c *Checker) Check(ctx context.Context, m Message) (Verdict, error) {
	var v Verdict
	r := &v.Results
	hdr, body := m.parts()
	fields, _ := splitHeader(hdr)
	log := m.Log
	if log == nil {
		log = c.o.Logger
	}

	// SPF (RFC 7208 §2.3, §2.4): MAIL FROM (or postmaster@HELO for the
	// null sender), and HELO on its own when it is a domain name.
	mf := CheckSPF(ctx, c.o.Resolver, m.Remote, m.Helo, m.MailFrom, "mailfrom")
	r.SPF = append(r.SPF, mf)
	if m.MailFrom != "" && isDomainName(strings.TrimSuffix(strings.ToLower(m.Helo), ".")) {
		r.SPF = append(r.SPF, CheckSPF(ctx, c.o.Resolver, m.Remote, m.Helo, m.MailFrom, "helo"))
	}
	for _, s := range r.SPF {
		c.o.Metrics.SPF.WithLabelValues(s.Identity, s.Result).Inc()
	}

	// DKIM (RFC 6376 §6).
	r.DKIM = VerifyDKIMMessage(ctx, c.o.Resolver, hdr, body, VerifyOptions{MaxSignatures: c.o.MaxSignatures, Now: c.o.Now})
	if len(r.DKIM) == 0 {
		c.o.Metrics.DKIM.WithLabelValues("none").Inc()
	}
	for _, d := range r.DKIM {
		c.o.Metrics.DKIM.WithLabelValues(d.Result).Inc()
	}

	// DMARC (RFC 7489 §6.6), for the domain a mail client shows.
	domain, rej := authorDomain(fields)
	if rej != nil {
		c.o.Metrics.PolicyActions.WithLabelValues("reject").Inc()
		log.Info("mail authentication", "remote", m.Remote.String(), "mail_from", m.MailFrom,
			"spf", mf.Result, "dkim", dkimSummary(r.DKIM), "rejected", true, "reason", rej.Reason)
		v.Reject = rej
		return v, nil
	}
	r.DMARC = c.dmarc(ctx, domain, mf, r.DKIM)
	r.Checked = true
	c.o.Metrics.DMARC.WithLabelValues(r.DMARC.Result).Inc()

	// Spoofing of our own domains.
	if rej := c.spoofCheck([]string{domain}, m.MailFrom, mf, r.DKIM); rej != nil {
		v.Reject = rej
	} else if r.DMARC.Result == "fail" {
		switch r.DMARC.Policy {
		case PolicyReject:
			if c.o.ReportOnly {
				c.o.Metrics.PolicyActions.WithLabelValues("report_only").Inc()
				break
			}
			// RFC 7489 §6.7, §10.3: reject during the SMTP transaction.
			c.o.Metrics.PolicyActions.WithLabelValues("reject").Inc()
			v.Reject = &smtp.Error{Code: 550, Enhanced: "5.7.1",
				Message: "Message rejected by the DMARC policy of " + asciiOnly(r.DMARC.From),
				Reason:  "mailauth: dmarc=fail p=reject header.from=" + r.DMARC.From}
		case PolicyQuarantine:
			if c.o.ReportOnly {
				c.o.Metrics.PolicyActions.WithLabelValues("report_only").Inc()
				break
			}
			c.o.Metrics.PolicyActions.WithLabelValues("quarantine").Inc()
			v.Quarantine = true
		}
	}
	log.Info("mail authentication", "remote", m.Remote.String(), "mail_from", m.MailFrom,
		"spf", mf.Result, "dkim", dkimSummary(r.DKIM), "dmarc", r.DMARC.Result,
		"header_from", r.DMARC.From, "policy", string(r.DMARC.Policy),
		"quarantine", v.Quarantine, "rejected", v.Reject != nil)
	if v.Reject != nil {
		return v, nil
	}

	// RFC 8601 §5: remove Authentication-Results that claim to be ours.
	header := stripFields(hdr, func(f field) bool {
		return strings.EqualFold(f.name, QuarantineField) ||
			strings.EqualFold(f.name, "Authentication-Results") && authservID(f.value()) == c.o.Hostname
	})
	if len(header) != len(hdr) {
		v.Header = header
	}
	if v.Quarantine {
		v.Prepend = append(v.Prepend, QuarantineField+": dmarc=fail policy=quarantine header.from="+pvalue(r.DMARC.From)+"\r\n"...)
	}
	v.Prepend = append(v.Prepend, AuthenticationResults(c.o.Hostname, *r)...)
	return v, nil
}

// dmarc evaluates DMARC for one From domain (RFC 7489 §6.6.2, §6.6.3).
func (c *Checker) dmarc(ctx context.Context, from string, spf SPFResult, dk []DKIMResult) DMARCResult {
	res := DMARCResult{From: from, Result: "none"}
	rec, at, err := LookupDMARC(ctx, c.o.Resolver, from)
	if err != nil {
		res.Result, res.Reason = "temperror", err.Error()
		return res
	}
	if rec == nil {
		res.Reason = "no DMARC record"
		return res
	}
	// RFC 7489 §4.2: pass when an aligned identifier passes.
	if spf.Result == "pass" && spf.Identity == "mailfrom" && Aligned(from, spf.Domain, rec.StrictSPF) {
		res.Result = "pass"
		return res
	}
	for _, d := range dk {
		if d.Result == "pass" && Aligned(from, d.Domain, rec.StrictDKIM) {
			res.Result = "pass"
			return res
		}
	}
	res.Result = "fail"
	// RFC 7489 §6.3 sp=: for subdomains of the organizational domain
	// whose policy was found at the organizational domain.
	res.Record = rec.Policy
	if at != from && rec.SubdomainPolicy != "" {
		res.Record = rec.SubdomainPolicy
	}
	res.Policy = res.Record
	// RFC 7489 §6.6.4: pct= applies the policy to that share of failing
	// mail; the rest gets the next policy down.
	if rec.Percent < 100 && c.o.Rand(100) >= rec.Percent {
		switch res.Policy {
		case PolicyReject:
			res.Policy = PolicyQuarantine
		case PolicyQuarantine:
			res.Policy = PolicyNone
		}
	}
	return res
}

// spoofCheck refuses mail whose From or MAIL FROM domain is one of ours
// when neither SPF (for MAIL FROM) nor DKIM passes for that domain.
func (c *Checker) spoofCheck(fromDomains []string, mailFrom string, spf SPFResult, dk []DKIMResult) *smtp.Error {
	check := fromDomains
	if d := addressDomain(mailFrom); d != "" && !contains(check, d) {
		check = append(check[:len(check):len(check)], d)
	}
	for _, d := range check {
		if !c.o.IsLocalDomain(d) {
			continue
		}
		ok, temp := false, false
		if spf.Identity == "mailfrom" && Aligned(d, spf.Domain, false) {
			ok = spf.Result == "pass"
			temp = spf.Result == "temperror"
		}
		for _, r := range dk {
			if Aligned(d, r.Domain, false) {
				ok = ok || r.Result == "pass"
				temp = temp || r.Result == "temperror"
			}
		}
		if ok {
			continue
		}
		if temp {
			c.o.Metrics.PolicyActions.WithLabelValues("tempfail").Inc()
			return &smtp.Error{Code: 451, Enhanced: "4.7.0", Message: "Temporary authentication failure for " + asciiOnly(d) + ", try again",
				Reason: "mailauth: local domain " + d + " without SPF or DKIM pass, temperror"}
		}
		c.o.Metrics.PolicyActions.WithLabelValues("spoof_reject").Inc()
		return &smtp.Error{Code: 550, Enhanced: "5.7.1", Message: "Sender domain " + asciiOnly(d) + " is ours and this message is not authenticated for it",
			Reason: "mailauth: local domain " + d + " without SPF or DKIM pass"}
	}
	return nil
}

func dkimSummary(rs []DKIMResult) string {
	if len(rs) == 0 {
		return "none"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.Result + ":" + r.Domain
	}
	return strings.Join(parts, ",")
}

// asciiOnly replaces what is not printable ASCII, for SMTP replies.
func asciiOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
