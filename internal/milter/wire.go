package milter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Commands the MTA sends (SMFIC_*), as Sendmail's libmilter/mfdef.h
// names them.
const (
	cmdAbort   = 'A' // SMFIC_ABORT: the transaction ends without EOM
	cmdBody    = 'B' // SMFIC_BODY: a body chunk
	cmdConnect = 'C' // SMFIC_CONNECT
	cmdMacro   = 'D' // SMFIC_MACRO: macros for the next command
	cmdEOM     = 'E' // SMFIC_BODYEOB: end of message
	cmdHelo    = 'H' // SMFIC_HELO
	cmdHeader  = 'L' // SMFIC_HEADER: one header field
	cmdMail    = 'M' // SMFIC_MAIL
	cmdEOH     = 'N' // SMFIC_EOH: end of the header section
	cmdOptNeg  = 'O' // SMFIC_OPTNEG: option negotiation
	cmdQuit    = 'Q' // SMFIC_QUIT
	cmdRcpt    = 'R' // SMFIC_RCPT
	cmdData    = 'T' // SMFIC_DATA
)

// Replies a milter sends (SMFIR_*).
const (
	repAddRcpt    = '+' // SMFIR_ADDRCPT
	repDelRcpt    = '-' // SMFIR_DELRCPT
	repAddRcptPar = '2' // SMFIR_ADDRCPT_PAR: add a recipient with ESMTP arguments
	repShutdown   = '4' // SMFIR_SHUTDOWN: 421, close the connection
	repAccept     = 'a' // SMFIR_ACCEPT
	repReplBody   = 'b' // SMFIR_REPLBODY: a chunk of the new body
	repContinue   = 'c' // SMFIR_CONTINUE
	repDiscard    = 'd' // SMFIR_DISCARD
	repChgFrom    = 'e' // SMFIR_CHGFROM
	repAddHeader  = 'h' // SMFIR_ADDHEADER
	repInsHeader  = 'i' // SMFIR_INSHEADER
	repChgHeader  = 'm' // SMFIR_CHGHEADER
	repProgress   = 'p' // SMFIR_PROGRESS: still working, wait on
	repQuarantine = 'q' // SMFIR_QUARANTINE
	repReject     = 'r' // SMFIR_REJECT
	repSkip       = 's' // SMFIR_SKIP: send no more events of this kind
	repTempfail   = 't' // SMFIR_TEMPFAIL
	repReplyCode  = 'y' // SMFIR_REPLYCODE: a reply of the milter's own
)

// Actions a milter may ask for (SMFIF_*), offered in option negotiation.
const (
	actAddHeaders  = 1 << 0 // SMFIF_ADDHDRS
	actChangeBody  = 1 << 1 // SMFIF_CHGBODY
	actAddRcpt     = 1 << 2 // SMFIF_ADDRCPT
	actDelRcpt     = 1 << 3 // SMFIF_DELRCPT
	actChgHeaders  = 1 << 4 // SMFIF_CHGHDRS
	actQuarantine  = 1 << 5 // SMFIF_QUARANTINE
	actChangeFrom  = 1 << 6 // SMFIF_CHGFROM
	actAddRcptPar  = 1 << 7 // SMFIF_ADDRCPT_PAR
	actSetSymList  = 1 << 8 // SMFIF_SETSYMLIST
	offeredActions = actAddHeaders | actChangeBody | actAddRcpt | actDelRcpt | actChgHeaders |
		actQuarantine | actChangeFrom | actAddRcptPar | actSetSymList
)

// Protocol options (SMFIP_*): events a milter does not want, replies it
// will not send, and SMFIR_SKIP.
const (
	optNoConnect  = 1 << 0  // SMFIP_NOCONNECT
	optNoHelo     = 1 << 1  // SMFIP_NOHELO
	optNoMail     = 1 << 2  // SMFIP_NOMAIL
	optNoRcpt     = 1 << 3  // SMFIP_NORCPT
	optNoBody     = 1 << 4  // SMFIP_NOBODY
	optNoHeaders  = 1 << 5  // SMFIP_NOHDRS
	optNoEOH      = 1 << 6  // SMFIP_NOEOH
	optNRHeader   = 1 << 7  // SMFIP_NR_HDR
	optNoUnknown  = 1 << 8  // SMFIP_NOUNKNOWN
	optNoData     = 1 << 9  // SMFIP_NODATA
	optSkip       = 1 << 10 // SMFIP_SKIP: the MTA understands SMFIR_SKIP
	optRcptRej    = 1 << 11 // SMFIP_RCPT_REJ: not offered, see offeredProtocol
	optNRConnect  = 1 << 12 // SMFIP_NR_CONN
	optNRHelo     = 1 << 13 // SMFIP_NR_HELO
	optNRMail     = 1 << 14 // SMFIP_NR_MAIL
	optNRRcpt     = 1 << 15 // SMFIP_NR_RCPT
	optNRData     = 1 << 16 // SMFIP_NR_DATA
	optNRUnknown  = 1 << 17 // SMFIP_NR_UNKN
	optNREOH      = 1 << 18 // SMFIP_NR_EOH
	optNRBody     = 1 << 19 // SMFIP_NR_BODY
	optHdrLeadSpc = 1 << 20 // SMFIP_HDR_LEADSPC: header values keep their leading space

	// offeredProtocol is every option Postern can honour. SMFIP_RCPT_REJ
	// (send the recipients the MTA refused, too) is not offered: a
	// milter sees only the recipients Postern accepted.
	offeredProtocol = (1<<21 - 1) &^ optRcptRej
)

// Protocol version 6 is Sendmail 8.14's (SMFI_PROT_VERSION), the one
// Postfix speaks by default.
const protocolVersion = 6

// Body chunks go to a milter in pieces of at most bodyChunk bytes:
// libmilter's MILTER_CHUNK_SIZE, the largest a milter takes without
// SMFIP_MDS_256K or SMFIP_MDS_1M, which Postern does not offer.
const bodyChunk = 65535

// maxReply bounds one packet from a milter. libmilter's largest is
// MILTER_MAX_DATA_SIZE with SMFIP_MDS_1M (1 MiB); a milter that was not
// offered it sends at most 64 KiB, plus a header value or a reply text.
// A longer packet is a protocol error, found before a byte of it is
// held: the buffer grows with the bytes that arrive, never with the
// length a milter claims.
const maxReply = 1<<20 + 64

// errProtocol is wrapped by the errors of malformed packets and replies.
var errProtocol = errors.New("protocol error")

// packet is one packet read from a milter: its command byte and data.
// data aliases the reading Conn's buffer until the next read.
type packet struct {
	code byte
	data []byte
}

// readPacket reads one packet into buf (reused; returned grown) from r.
func readPacket(r io.Reader, buf []byte) (packet, []byte, error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:4]); err != nil {
		return packet{}, buf, err
	}
	n := binary.BigEndian.Uint32(head[:4])
	switch {
	case n == 0:
		return packet{}, buf, fmt.Errorf("%w: empty packet", errProtocol)
	case n > maxReply:
		return packet{}, buf, fmt.Errorf("%w: packet of %d bytes (the limit is %d)", errProtocol, n, maxReply)
	}
	if _, err := io.ReadFull(r, head[4:5]); err != nil {
		return packet{}, buf, eofUnexpected(err)
	}
	want := int(n) - 1
	buf = buf[:0]
	for len(buf) < want {
		step := min(want-len(buf), 64<<10)
		buf = append(buf, make([]byte, step)...)
		if _, err := io.ReadFull(r, buf[len(buf)-step:]); err != nil {
			return packet{}, buf, eofUnexpected(err)
		}
	}
	return packet{code: head[4], data: buf}, buf, nil
}

// eofUnexpected turns io.EOF in the middle of a packet into
// io.ErrUnexpectedEOF.
func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendPacket appends a packet with code and the concatenation of
// parts to dst.
func appendPacket(dst []byte, code byte, parts ...[]byte) []byte {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, code)
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}

// cstring returns s with its NUL terminator, as the protocol's strings
// are; a NUL inside s would cut it, so it is replaced by a space (the
// session never hands one on: it refuses NUL in commands and data).
func cstring(s string) []byte {
	b := make([]byte, 0, len(s)+1)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, 0)
}

// cstrings splits data into its NUL-terminated strings. It fails when
// data does not end in NUL (an unterminated string).
func cstrings(data []byte) ([]string, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if data[len(data)-1] != 0 {
		return nil, fmt.Errorf("%w: string without NUL terminator", errProtocol)
	}
	var out []string
	for len(data) > 0 {
		i := bytes.IndexByte(data, 0)
		out = append(out, string(data[:i]))
		data = data[i+1:]
	}
	return out, nil
}
