// Package milter is the client side of the Sendmail milter protocol
// (version 6, as libmilter and Postfix speak it): Postern hands the SMTP
// events of a session (connect, HELO, MAIL, RCPT, DATA) and the message
// (header fields, body chunks, its end) to mail filters such as rspamd,
// OpenDKIM or clamav-milter, over TCP or a unix socket, and takes their
// decisions (accept, reject with their own reply, tempfail, discard,
// quarantine) and their changes (header fields added, changed, inserted
// or deleted; sender and recipients changed; the body replaced).
//
// A Conn is one connection to one milter; a Chain runs the milters of
// one SMTP session in order, as Postfix's smtpd_milters do, with each
// milter's timeouts and its default action for when it is down, slow or
// broken. Postfix's behaviour is the reference (its MILTER_README and
// src/milter/milter8.c): the first Received field, the MTA's own, is
// hidden from milters; header values travel as Sendmail sends them
// (lines separated by "\n", the space after the colon dropped unless the
// milter negotiated SMFIP_HDR_LEADSPC); SMFIR_REPLYCODE texts have their
// Sendmail "%%" undone.
//
// # Memory
//
// A message is a header section in memory and a body that may be a
// 35 MB file. The body goes to a milter in chunks of 65535 bytes read
// from the Transaction, one chunk buffer per message; a body a milter
// sends back (SMFIR_REPLBODY) streams through a small buffer to the
// Transaction's BodyWriter, which spills it to a spool file. A milter's
// packet may not pass 1 MiB, and its buffer grows with the bytes that
// arrive, never with the length the milter announces; its header and
// envelope changes are held until its final answer, at most 1 MiB of
// them.
//
// # Why not a library
//
// DESIGN.md names d--j/go-milter and emersion/go-milter as candidates.
// Both were measured against what this package must keep, in their
// latest releases on the module proxy (d--j/go-milter v0.10.1,
// emersion/go-milter v0.4.1), with a test program and a fake milter:
//
//   - A milter that answers option negotiation with a packet of length 0
//     panics both clients ("slice bounds out of range [1:0]" in their
//     packet reader): one broken filter would crash the whole server.
//   - d--j/go-milter collects every change of the end of the message,
//     body replacement included, in a slice before it returns: a 35 MB
//     new body, sent as 560 SMFIR_REPLBODY packets, left 40 MB in the
//     heap and allocated 74 MB. emersion/go-milter's code does the
//     same.
//   - d--j/go-milter allocates the length a milter announces before
//     reading it: a packet that claims 500 MB allocates 500 MB (up to
//     512 MB); emersion/go-milter's has no limit (4 GB).
//   - Timeouts are one read and one write deadline per client on the
//     real clock: no separate connect, command and end-of-message
//     timeouts, and no clock a test can drive.
//
// None of that can be changed from outside either library, so the
// protocol is ours: about 1,900 lines with the Chain, fuzzed (FuzzConn),
// tested against rspamd and OpenDKIM (test/milter_test.go) and a milter
// of the tests (miltertest) for what those two do not do.
package milter
