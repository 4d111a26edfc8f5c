package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"postern/internal/delivery/policy"
	"postern/internal/smtp"
)

// attempt tries one address of one target for the recipients of msg. When
// it reaches a final outcome it fills res and returns next false;
// otherwise it leaves res alone and returns the failure, with next true
// (try the next address or host). began is when the delivery started,
// for Session.Connect.
func (d *Deliverer) attempt(ctx context.Context, msg *Message, tg *target, addr string, res []Result, began time.Time) (f *failure, next bool) {
	start := d.now()
	key := poolKey{host: tg.host.Name, addr: addr, mode: modeKey(tg)}
	c, hit, f := d.session(ctx, tg, key)
	sess := Session{Addr: addr}
	ev := []slog.Attr{
		slog.String("id", msg.ID), slog.String("domain", domainOf(msg.Rcpts[0])),
		slog.String("host", tg.host.Name), slog.String("addr", addr),
		slog.String("policy", string(tg.host.Source)), slog.Bool("reused", hit),
	}
	defer func() {
		ev = append(ev, slog.Duration("duration", d.now().Sub(start)))
		d.log.LogAttrs(ctx, slog.LevelInfo, "remote delivery attempt", ev...)
	}()
	if f != nil {
		f.host = tg.host.Name
		sess.Connect = d.now().Sub(began)
		f.sess = sess
		ev = append(ev, slog.Int("code", f.rep.Code), slog.String("reply", f.rep.Text()),
			slog.String("outcome", "next"), slog.Any("error", f.err))
		return f, true
	}
	// The protection this message gets: the session may have been
	// dialed for another (read before the session goes back to the pool).
	label := tlsLabel(tg, c)
	ev = append(ev, slog.String("tls", tlsVersion(c)), slog.String("tls_mode", label))
	sess.Verification = verification(tg, c)
	if cs := c.TLS(); cs != nil {
		sess.TLSVersion, sess.TLSCipher = tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite)
	}
	ready := d.now()
	sess.Connect = ready.Sub(began)
	if err := tg.host.Audit(c.TLS()); err != nil {
		// RFC 8461 §5: a policy in testing mode reports, and delivers.
		reason := policy.AuditCertificate
		if ae := (*policy.AuditError)(nil); errors.As(err, &ae) {
			reason = ae.Reason
		}
		d.log.LogAttrs(ctx, slog.LevelWarn, "MTA-STS testing: enforce mode would refuse this session; delivering anyway",
			slog.String("id", msg.ID), slog.String("domain", domainOf(msg.Rcpts[0])), slog.String("host", tg.host.Name),
			slog.String("addr", addr), slog.String("reason", reason), slog.Any("error", err))
	}
	// Stop watching ctx before the session goes back to the pool, where
	// another delivery may take it.
	stop := c.Watch(ctx)
	put := func() { stop(); d.pool.put(c) }

	if f := d.refuse(msg, c); f != nil {
		f.host, f.tls, f.sess = tg.host.Name, label, sess
		put()
		setAll(res, f)
		ev = append(ev, slog.String("outcome", "bounced"), slog.Any("error", f.err))
		return f, false
	}
	pend := pending(res)
	rcpts := make([]string, len(pend))
	for j, i := range pend {
		rcpts[j] = "RCPT TO:<" + msg.Rcpts[i] + ">" + rcptDSN(msg, msg.Rcpts[i], c) // dsn.go
	}
	hopDSN := c.has("DSN")
	tx, err := c.transaction(d.mailFrom(msg, c), rcpts, msg.Data)
	last := c.Last()
	sess.Transmit = d.now().Sub(ready)
	sess.Reply = truncate(last.String(), 200)
	ev = append(ev, slog.Int("code", last.Code), slog.String("reply", sess.Reply))
	if err != nil {
		stop()
		d.pool.discard(c)
		f := &failure{enhanced: "4.4.2", host: tg.host.Name, tls: label, sess: sess,
			err: fmt.Errorf("remote: %s[%s]: session lost: %w", tg.host.Name, addr, err)}
		ev = append(ev, slog.String("outcome", "next"), slog.Any("error", err))
		return f, true
	}
	put()
	if tx.final.Code/100 == 2 {
		sess.RemoteID = RemoteQueueID(tx.final.Text())
	}
	base := Result{Host: tg.host.Name, TLS: label, Session: sess}
	if tx.mail.Code != 250 {
		f := replyFailure(tg, addr, "MAIL FROM", tx.mail)
		f.tls, f.sess = label, sess
		ev = append(ev, slog.String("outcome", outcomeOf(tx.mail)))
		if tx.mail.Code/100 == 4 {
			return f, true // RFC 5321 §4.5.4.1: another host may take it
		}
		setAll(res, f)
		return f, false
	}
	for j, i := range pend {
		r := base
		r.Rcpt = res[i].Rcpt
		switch rcpt := tx.rcpts[j]; {
		case rcpt.Code/100 != 2:
			setReply(&r, rcpt, fmt.Errorf("remote: %s[%s]: RCPT TO: %w", tg.host.Name, addr, rcpt.Err()))
		case tx.data.Code != 354:
			setReply(&r, tx.data, fmt.Errorf("remote: %s[%s]: DATA: %w", tg.host.Name, addr, tx.data.Err()))
		case tx.final.Code/100 != 2:
			setReply(&r, tx.final, fmt.Errorf("remote: %s[%s]: end of DATA: %w", tg.host.Name, addr, tx.final.Err()))
		default:
			r.Delivered, r.NextHopDSN = true, hopDSN
			r.Code, r.Enhanced, r.Text = tx.final.Code, tx.final.Enhanced, tx.final.Text()
		}
		res[i] = r
	}
	ev = append(ev, slog.String("outcome", "done"))
	return nil, false
}

// pending returns the indexes of the recipients without an outcome.
func pending(res []Result) []int {
	var p []int
	for i := range res {
		if res[i].Err == nil && !res[i].Delivered {
			p = append(p, i)
		}
	}
	return p
}

// setReply records a refusal reply in r.
func setReply(r *Result, rep reply, err error) {
	r.Permanent = rep.Code/100 == 5
	r.Code, r.Enhanced, r.Text, r.Err = rep.Code, rep.Enhanced, rep.Text(), err
}

// replyFailure is the failure of a reply to cmd.
func replyFailure(tg *target, addr, cmd string, rep reply) *failure {
	return &failure{
		permanent: rep.Code/100 == 5, rep: rep, host: tg.host.Name,
		err: fmt.Errorf("remote: %s[%s]: %s: %w", tg.host.Name, addr, cmd, rep.Err()),
	}
}

// hostFailure is the temporary failure of a host that refused the
// session with rep: the recipients are not refused, another host (or a
// later attempt) may take the message.
func hostFailure(tg *target, addr, cmd string, rep reply) *failure {
	f := replyFailure(tg, addr, cmd, rep)
	f.permanent = false
	return f
}

// outcomeOf names the outcome of a refusal for logs.
func outcomeOf(rep reply) string {
	if rep.Code/100 == 5 {
		return "bounced"
	}
	return "next"
}

// refuse returns the permanent failure of a message the next hop cannot
// take, or nil.
func (d *Deliverer) refuse(msg *Message, c *conn) *failure {
	perm := func(enh, format string, args ...any) *failure {
		return &failure{permanent: true, enhanced: enh,
			err: fmt.Errorf("remote: %s: "+format, append([]any{c.key.host}, args...)...)}
	}
	if n := c.maxSize(); c.has("SIZE") && n > 0 && msg.Data.Size() > n {
		// RFC 1870 §6.
		return perm("5.3.4", "message size %d exceeds fixed maximum message size: next hop accepts at most %d octets",
			msg.Data.Size(), n)
	}
	if msg.EightBit && !c.has("8BITMIME") {
		// RFC 6152 §3: no 8-bit data to a server without 8BITMIME.
		return perm("5.6.3", "message has 8-bit data and the next hop does not offer 8BITMIME")
	}
	if msg.SMTPUTF8 && !c.has("SMTPUTF8") {
		return perm("5.6.7", "message needs SMTPUTF8 and the next hop does not offer it") // RFC 6531 §3.2
	}
	if msg.RequireTLS && !c.has("REQUIRETLS") {
		return perm("5.7.30", "message requires REQUIRETLS and the next hop does not offer it") // RFC 8689 §4.2.1
	}
	return nil
}

// mailFrom returns the MAIL command for msg with the parameters c offers.
func (d *Deliverer) mailFrom(msg *Message, c *conn) string {
	s := "MAIL FROM:<" + msg.From + ">"
	if c.has("SIZE") {
		s += " SIZE=" + strconv.FormatInt(msg.Data.Size(), 10) // RFC 1870 §6
	}
	if msg.EightBit && c.has("8BITMIME") {
		s += " BODY=8BITMIME" // RFC 6152 §2
	}
	if msg.SMTPUTF8 && c.has("SMTPUTF8") {
		s += " SMTPUTF8" // RFC 6531 §3.4
	}
	if msg.RequireTLS && c.has("REQUIRETLS") {
		s += " REQUIRETLS" // RFC 8689 §4.1
	}
	return s + mailDSN(msg, c) // dsn.go
}

// session returns a ready session for key: a pooled one that meets tg's
// TLS requirement and answers RSET (hit), or a new one (miss). A pooled
// session that fails either is ended and another tried; that is not a
// delivery failure.
func (d *Deliverer) session(ctx context.Context, tg *target, key poolKey) (*conn, bool, *failure) {
	for {
		c, err := d.pool.get(ctx, key)
		if err != nil {
			return nil, false, &failure{enhanced: "4.4.7", err: fmt.Errorf("remote: %s[%s]: waiting for a session: %w", key.host, key.addr, err)}
		}
		if c == nil {
			break
		}
		if f := d.meets(tg, c); f != nil {
			// It met the requirement of the message it was dialed for,
			// not this one's. A new session to the same address meets it
			// only if the server changed its certificate, so this mail
			// is most likely deferred; the session is ended rather than
			// kept, which costs the other domain one new connection
			// (the pool takes the most recent idle session first, and
			// would hand this one out again).
			d.m.pool.WithLabelValues("refused").Inc()
			d.log.Info("pooled session does not meet this message's TLS requirement; connecting anew",
				"host", key.host, "addr", key.addr, "policy", string(tg.host.Source), "error", f.err)
			c.quit()
			d.pool.release(key)
			continue
		}
		stop := c.Watch(ctx)
		err = c.reset() // RFC 5321 §4.1.1.5: a clean state for the next message
		stop()
		if err == nil {
			d.m.pool.WithLabelValues("hit").Inc()
			return c, true, nil
		}
		d.pool.discard(c)
	}
	d.m.pool.WithLabelValues("miss").Inc()
	c, f := d.dial(ctx, tg, key, false)
	var he *smtp.HandshakeError
	if f != nil && errors.As(f.err, &he) && tg.smarthost == nil && tg.host.Mode == policy.Opportunistic {
		// Opportunistic TLS that fails in the handshake (no common
		// version or cipher, a broken server) falls back to plaintext
		// on a new connection, as without STARTTLS (RFC 7435 §4).
		if c != nil {
			c.Close()
		}
		c, f = d.dial(ctx, tg, key, true)
	}
	if f != nil {
		if c != nil {
			c.quit()
		}
		d.pool.release(key)
		return nil, false, f
	}
	return c, false, nil
}

// dial opens and prepares a new session: connect, greeting, EHLO,
// STARTTLS (or implicit TLS; not when plain is set), TLS checks per the
// host's mode, EHLO again and, for a smarthost, AUTH. On failure the
// returned conn, when not nil, is still open and must be closed.
func (d *Deliverer) dial(ctx context.Context, tg *target, key poolKey, plain bool) (*conn, *failure) {
	h := &tg.host
	tmp := func(enh string, err error) *failure {
		return &failure{enhanced: enh, err: fmt.Errorf("remote: %s[%s]: %w", h.Name, key.addr, err)}
	}
	dialer := d.Dialer
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	dctx, cancel := context.WithTimeout(ctx, d.t.Connect)
	defer cancel()
	nc, err := dialer.DialContext(dctx, "tcp", key.addr)
	if err != nil {
		return nil, tmp("4.4.1", fmt.Errorf("connect: %w", err)) // RFC 3463 §3.5
	}
	sh := tg.smarthost
	if sh != nil && sh.ImplicitTLS {
		tc := tls.Client(nc, d.tlsConfig(tg))
		nc.SetDeadline(time.Now().Add(d.t.Connect))
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, tmp("4.7.5", fmt.Errorf("TLS handshake: %w", err))
		}
		nc = tc
	}
	c := newConn(nc, d.t)
	c.key = key
	stop := c.Watch(ctx)
	defer stop()
	rep, err := c.greet()
	if err != nil {
		return c, tmp("4.4.2", fmt.Errorf("greeting: %w", err))
	}
	if rep.Code != 220 {
		// RFC 5321 §3.1, §5.1: a host that will not talk is skipped; the
		// recipients are not refused.
		return c, hostFailure(tg, key.addr, "greeting", rep)
	}
	if rep, err = c.hello("EHLO", d.Hostname); err != nil || rep.Code != 250 {
		if err != nil {
			return c, tmp("4.4.2", fmt.Errorf("EHLO: %w", err))
		}
		return c, hostFailure(tg, key.addr, "EHLO", rep)
	}
	if c.TLS() == nil && c.has("STARTTLS") && !plain {
		rep, err := c.startTLS(ctx, d.tlsConfig(tg))
		if err != nil {
			return c, tmp("4.7.5", fmt.Errorf("STARTTLS: %w", err))
		}
		if c.TLS() != nil {
			// RFC 3207 §4.2: forget everything from before TLS; EHLO again.
			if rep, err = c.hello("EHLO", d.Hostname); err != nil || rep.Code != 250 {
				if err != nil {
					return c, tmp("4.4.2", fmt.Errorf("EHLO after STARTTLS: %w", err))
				}
				return c, hostFailure(tg, key.addr, "EHLO after STARTTLS", rep)
			}
		}
	}
	if f := d.meets(tg, c); f != nil {
		return c, f
	}
	if sh != nil && sh.Username != "" {
		rep, err := c.auth(sh.Username, sh.Password)
		if err != nil {
			return c, tmp("4.7.0", fmt.Errorf("AUTH: %w", err))
		}
		if rep.Code != 235 {
			return c, hostFailure(tg, key.addr, "AUTH", rep) // fix the credentials and retry
		}
	}
	return c, nil
}

// meets checks that session c gives what tg's host requires: TLS for
// Encrypt and Verify (and a smarthost), and for Verify a certificate that
// Host.Verify accepts (DANE: the TLSA records; MTA-STS, a configured
// "verify", REQUIRETLS: WebPKI for the MX name). It runs when a session
// is dialed, and again on the saved connection state each time a pooled
// session is taken for a message: the pool key (host, address, mode)
// does not say which rule verified a session, and DANE, MTA-STS and
// "verify" share the mode Verify.
//
// Checking again is both correct and cheap. Correct: it is the very check
// a new session gets, for this message's requirement and at this time
// (so a certificate that expired while the session was idle is caught),
// whatever the session was opened for. Cheap (BenchmarkMeets, 2 cores):
// 1 to 5 µs for a WebPKI chain (policy remembers the chains it verified
// while they are valid; the first verification costs about 200 µs) and
// about 1 µs for a DANE-EE digest, against about 130 µs of CPU for a
// whole pooled delivery (BenchmarkDeliverPooled) and a new connection's
// TCP and TLS handshakes. Keying the pool by the verification source,
// the TLSA set and the recipient domain instead would split the sessions
// to one MX among all the domains it serves (a provider's MX serving
// thousands of domains is where pooling pays most), and would still
// trust a check made when the session was dialed.
func (d *Deliverer) meets(tg *target, c *conn) *failure {
	h, sh := &tg.host, tg.smarthost
	tmp := func(enh string, err error) *failure {
		return &failure{enhanced: enh, err: fmt.Errorf("remote: %s[%s]: %w", h.Name, c.key.addr, err)}
	}
	if c.TLS() == nil && (h.Mode >= policy.Encrypt || sh != nil) {
		reason := h.Reason
		if reason == "" {
			reason = string(h.Source)
		}
		return tmp("4.7.10", fmt.Errorf("policy %s requires STARTTLS, not offered or refused", reason))
	}
	if c.TLS() != nil && h.Mode == policy.Verify && sh == nil {
		verify := d.VerifyTLS
		if verify == nil {
			verify = func(h *policy.Host, cs tls.ConnectionState) error { return h.Verify(cs) }
		}
		if err := verify(h, *c.TLS()); err != nil {
			return tmp("4.7.5", fmt.Errorf("TLS verification (%s): %w", h.Reason, err))
		}
	}
	return nil
}

// tlsConfig returns the TLS configuration for a session to tg: for MX
// hosts, no certificate check in the handshake (Host.Verify decides
// afterwards, so that opportunistic delivery works with any certificate);
// for a smarthost, WebPKI verification of its name.
func (d *Deliverer) tlsConfig(tg *target) *tls.Config {
	var cfg *tls.Config
	if d.TLSClientConfig != nil {
		cfg = d.TLSClientConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	cfg.ServerName = tg.host.Name
	cfg.InsecureSkipVerify = tg.smarthost == nil
	if tg.smarthost != nil && tg.smarthost.RootCAs != nil {
		cfg.RootCAs = tg.smarthost.RootCAs
	}
	if cfg.ClientSessionCache == nil {
		cfg.ClientSessionCache = d.sessions
	}
	return cfg
}

// modeKey names a target's TLS requirement for the pool key.
func modeKey(tg *target) string {
	if tg.smarthost != nil {
		return "smarthost"
	}
	return strconv.Itoa(int(tg.host.Mode))
}

// tlsLabel names the protection of a session for Result.TLS and metrics.
func tlsLabel(tg *target, c *conn) string {
	switch {
	case tg.smarthost != nil:
		return "smarthost"
	case c.TLS() == nil:
		return "plain"
	case tg.host.Mode == policy.Verify && tg.host.Source == policy.SourceDANE:
		return "dane"
	case tg.host.Mode == policy.Verify && tg.host.Source == policy.SourceMTASTS:
		return "mta-sts"
	}
	return "starttls"
}

// verification names how far the server of session c was
// authenticated, for Session.Verification.
func verification(tg *target, c *conn) string {
	switch {
	case c.TLS() == nil:
		return "none"
	case tg.smarthost != nil:
		return "verified" // WebPKI in the handshake (tlsConfig)
	case tg.host.Mode != policy.Verify:
		return "encrypted"
	case tg.host.Source == policy.SourceDANE:
		return "dane"
	case tg.host.Source == policy.SourceMTASTS:
		return "mta-sts"
	}
	return "verified"
}

// tlsVersion returns the TLS version of c for logs, or "none".
func tlsVersion(c *conn) string {
	if c.TLS() == nil {
		return "none"
	}
	return tls.VersionName(c.TLS().Version)
}
