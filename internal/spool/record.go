package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	"postern/internal/smtp"
)

// A segment is a sequence of records, appended and never rewritten:
//
//	offset size  field
//	0      4     magic "PQR\x00"
//	4      1     version (1 to 5: the envelope encoding, see appendEnvelope)
//	5      3     reserved, zero
//	8      4     envelope length E, big endian
//	12     4     data length D, big endian
//	16     4     CRC-32C (Castagnoli) over bytes 0..15, then the envelope, then the data
//	20     E     envelope (see encodeEnvelope)
//	20+E   D     message data
//
// A record whose header is short, whose magic, version or lengths are
// wrong, or whose CRC does not match ends the scan of its segment: it is a
// torn write that was never acknowledged.
//
// The message data of a record is the whole message. A version-4 record,
// whose envelope carries a blob reference, is found only at the end of a
// blob file (blob.go): its message data is the header section, the body
// being in the file before it. Version 5 is version 4's encoding that may
// carry the DSN parameters (RFC 3461); it is written, in a segment or a
// blob, only for a message that has some, so that the records of every
// other message stay readable by older releases. Segments hold versions
// 1 to 3 and 5.
const (
	recordHeaderLen = 20
	// recordVersion is the version of the records written to segments;
	// blobRecordVersion that of a blob's record; every version from 1
	// up to maxRecordVersion stays readable.
	recordVersion     = 3
	blobRecordVersion = 4
	dsnRecordVersion  = 5
	maxRecordVersion  = 5
	// maxEnvelopeLen bounds the envelope length a header may claim.
	maxEnvelopeLen = 16 << 20
	// maxDataLen bounds the data length a header may claim.
	maxDataLen = 1 << 30
)

var (
	recordMagic = [4]byte{'P', 'Q', 'R', 0}
	crcTable    = crc32.MakeTable(crc32.Castagnoli)
)

// errCorrupt reports a record that cannot be decoded.
var errCorrupt = errors.New("corrupt record")

// appendRecord appends the record for env and data to buf.
func appendRecord(buf []byte, env *smtp.Envelope, data []byte) []byte {
	return appendRecordParts(buf, env, data, nil, nil)
}

// appendRecordParts appends the record for env whose message data is
// head followed by body, with the blob reference ref when not nil.
func appendRecordParts(buf []byte, env *smtp.Envelope, head, body []byte, ref *blobRef) []byte {
	v := versionFor(env, ref)
	start := len(buf)
	buf = append(buf, make([]byte, recordHeaderLen)...)
	buf = appendEnvelopeRef(buf, env, v, ref)
	envLen := len(buf) - start - recordHeaderLen
	buf = append(buf, head...)
	buf = append(buf, body...)
	h := buf[start : start+recordHeaderLen]
	copy(h[0:4], recordMagic[:])
	h[4] = v
	binary.BigEndian.PutUint32(h[8:12], uint32(envLen))
	binary.BigEndian.PutUint32(h[12:16], uint32(len(head)+len(body)))
	crc := crc32.Update(0, crcTable, h[:16])
	crc = crc32.Update(crc, crcTable, buf[start+recordHeaderLen:])
	binary.BigEndian.PutUint32(h[16:20], crc)
	return buf
}

// versionFor returns the version of the record written for env, with
// the blob reference ref when not nil.
func versionFor(env *smtp.Envelope, ref *blobRef) byte {
	switch {
	case hasDSN(env):
		return dsnRecordVersion
	case ref != nil:
		return blobRecordVersion
	}
	return recordVersion
}

// recordHeader is the decoded fixed part of a record.
type recordHeader struct {
	version         byte
	envLen, dataLen int64
	crc             uint32
}

// parseHeader decodes and checks the fixed part of a record.
func parseHeader(h []byte) (recordHeader, error) {
	if len(h) < recordHeaderLen {
		return recordHeader{}, fmt.Errorf("%w: short header", errCorrupt)
	}
	if [4]byte(h[0:4]) != recordMagic {
		return recordHeader{}, fmt.Errorf("%w: bad magic", errCorrupt)
	}
	if h[4] < 1 || h[4] > maxRecordVersion || h[5] != 0 || h[6] != 0 || h[7] != 0 {
		return recordHeader{}, fmt.Errorf("%w: unknown version %d", errCorrupt, h[4])
	}
	rh := recordHeader{
		version: h[4],
		envLen:  int64(binary.BigEndian.Uint32(h[8:12])),
		dataLen: int64(binary.BigEndian.Uint32(h[12:16])),
		crc:     binary.BigEndian.Uint32(h[16:20]),
	}
	if rh.envLen == 0 || rh.envLen > maxEnvelopeLen || rh.dataLen > maxDataLen {
		return recordHeader{}, fmt.Errorf("%w: bad lengths", errCorrupt)
	}
	return rh, nil
}

// checkRecord verifies the CRC of a whole record (header included).
func checkRecord(rh recordHeader, rec []byte) error {
	crc := crc32.Update(0, crcTable, rec[:16])
	crc = crc32.Update(crc, crcTable, rec[recordHeaderLen:])
	if crc != rh.crc {
		return fmt.Errorf("%w: CRC mismatch", errCorrupt)
	}
	return nil
}

// Envelope encoding: a sequence of fields, strings as a uvarint length
// and the bytes, numbers as varints:
//
//	ID, From, uvarint count + Recipients, flags byte, Body, AuthUser,
//	Listener, Remote (netip.AddrPort.MarshalBinary as a string), Helo,
//	ReceivedAt (varint Unix nanoseconds), since version 3 HoldReason,
//	since version 4 when flag bit 3 is set, the blob reference: uvarint
//	offset and uvarint length of the body in the blob file; in version 5
//	when flag bit 4 is set, the DSN parameters: Ret, EnvID, uvarint
//	count, and for each recipient that has some, in the order of
//	Recipients, the address, a byte of smtp.Notify bits and ORcpt.
//
// The flags are bit 0 SMTPUTF8 (version 1 and later), bit 1 RequireTLS
// (version 2 and later), bit 2 Hold (version 3 and later), bit 3 blob
// (version 4 and later) and bit 4 DSN (version 5). A version-1 record
// has only bit 0; a bit the record's version does not define makes the record corrupt. appendEnvelope writes
// the encoding of version v, leaving out what v cannot carry (tests write
// old records with it).
func appendEnvelope(b []byte, env *smtp.Envelope, v byte) []byte {
	return appendEnvelopeRef(b, env, v, nil)
}

// appendEnvelopeRef is appendEnvelope with the blob reference ref, when
// not nil (v must then be 4 or more).
func appendEnvelopeRef(b []byte, env *smtp.Envelope, v byte, ref *blobRef) []byte {
	b = appendString(b, env.ID)
	b = appendString(b, env.From)
	b = binary.AppendUvarint(b, uint64(len(env.Recipients)))
	for _, r := range env.Recipients {
		b = appendString(b, r)
	}
	var flags byte
	if env.SMTPUTF8 {
		flags |= flagSMTPUTF8
	}
	if env.RequireTLS {
		flags |= flagRequireTLS
	}
	if env.Hold {
		flags |= flagHold
	}
	if ref != nil {
		flags |= flagBlob
	}
	if hasDSN(env) {
		flags |= flagDSN
	}
	flags &= knownFlags(v)
	b = append(b, flags)
	b = appendString(b, env.Body)
	b = appendString(b, env.AuthUser)
	b = appendString(b, env.Listener)
	remote, _ := env.Remote.MarshalBinary() // never fails
	b = binary.AppendUvarint(b, uint64(len(remote)))
	b = append(b, remote...)
	b = appendString(b, env.Helo)
	var ns int64
	if !env.ReceivedAt.IsZero() {
		ns = env.ReceivedAt.UnixNano()
	}
	b = binary.AppendVarint(b, ns)
	if v >= 3 {
		b = appendString(b, env.HoldReason)
	}
	if ref != nil && v >= 4 {
		b = binary.AppendUvarint(b, uint64(ref.off))
		b = binary.AppendUvarint(b, uint64(ref.n))
	}
	if flags&flagDSN != 0 {
		b = appendDSN(b, env)
	}
	return b
}

// hasDSN reports whether env carries DSN parameters.
func hasDSN(env *smtp.Envelope) bool {
	return env.Ret != "" || env.EnvID != "" || len(env.DSN) > 0
}

// appendDSN appends env's DSN parameters (version 5, flag bit 4).
func appendDSN(b []byte, env *smtp.Envelope) []byte {
	b = appendString(b, env.Ret)
	b = appendString(b, env.EnvID)
	n := 0
	for _, r := range env.Recipients {
		if _, ok := env.DSN[r]; ok {
			n++
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for _, r := range env.Recipients {
		if rd, ok := env.DSN[r]; ok {
			b = appendString(b, r)
			b = append(b, byte(rd.Notify))
			b = appendString(b, rd.ORcpt)
		}
	}
	return b
}

// decodeDSN decodes what appendDSN wrote into env.
func (d *decoder) decodeDSN(env *smtp.Envelope) error {
	env.Ret, env.EnvID = d.string(), d.string()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return d.err
	}
	for range n {
		r, notify, orcpt := d.string(), smtp.Notify(d.byte()), d.string()
		if d.err != nil {
			return d.err
		}
		if !slices.Contains(env.Recipients, r) {
			return fmt.Errorf("%w: DSN parameters of %q, not a recipient", errCorrupt, r)
		}
		if !validNotify(notify) {
			return fmt.Errorf("%w: bad NOTIFY bits %#x", errCorrupt, byte(notify))
		}
		if env.DSN == nil {
			env.DSN = make(map[string]smtp.RcptDSN, n)
		}
		env.DSN[r] = smtp.RcptDSN{Notify: notify, ORcpt: orcpt}
	}
	return d.err
}

// validNotify reports whether n is a NOTIFY value the session can make:
// none, NEVER alone, or a set of SUCCESS, FAILURE and DELAY.
func validNotify(n smtp.Notify) bool {
	all := smtp.NotifyNever | smtp.NotifySuccess | smtp.NotifyFailure | smtp.NotifyDelay
	return n&^all == 0 && (n&smtp.NotifyNever == 0 || n == smtp.NotifyNever)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads the fields appendEnvelope and the state encoding write;
// the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated field", errCorrupt)
	}
	d.b = nil
}

// consumed takes the n bytes of a varint just decoded (binary.Uvarint's
// or Varint's n); it fails the decoder when there was none.
func (d *decoder) consumed(n int) bool {
	if n <= 0 {
		d.fail()
		return false
	}
	d.b = d.b[n:]
	return true
}

func (d *decoder) uvarint() uint64 {
	if v, n := binary.Uvarint(d.b); d.consumed(n) {
		return v
	}
	return 0
}

func (d *decoder) varint() int64 {
	if v, n := binary.Varint(d.b); d.consumed(n) {
		return v
	}
	return 0
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// Envelope flag bits.
const (
	flagSMTPUTF8   = 1 << 0 // since version 1
	flagRequireTLS = 1 << 1 // since version 2
	flagHold       = 1 << 2 // since version 3
	flagBlob       = 1 << 3 // since version 4
	flagDSN        = 1 << 4 // since version 5
)

// knownFlags returns the flag bits record version v defines.
func knownFlags(v byte) byte {
	if v >= 5 {
		return flagSMTPUTF8 | flagRequireTLS | flagHold | flagBlob | flagDSN
	}
	if v >= 4 {
		return flagSMTPUTF8 | flagRequireTLS | flagHold | flagBlob
	}
	if v >= 3 {
		return flagSMTPUTF8 | flagRequireTLS | flagHold
	}
	if v >= 2 {
		return flagSMTPUTF8 | flagRequireTLS
	}
	return flagSMTPUTF8
}

// decodeEnvelope decodes what appendEnvelope wrote in a record of the
// given version; it ignores a blob reference.
func decodeEnvelope(b []byte, version byte) (*smtp.Envelope, error) {
	env, _, err := decodeEnvelopeRef(b, version)
	return env, err
}

// decodeEnvelopeRef decodes what appendEnvelopeRef wrote in a record of
// the given version; ref is nil when the record has no blob.
func decodeEnvelopeRef(b []byte, version byte) (env *smtp.Envelope, ref *blobRef, err error) {
	if version < 1 || version > maxRecordVersion {
		return nil, nil, fmt.Errorf("%w: unknown version %d", errCorrupt, version)
	}
	d := &decoder{b: b}
	env = &smtp.Envelope{ID: d.string(), From: d.string()}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
	}
	if d.err == nil && n > 0 {
		env.Recipients = make([]string, n)
		for i := range env.Recipients {
			env.Recipients[i] = d.string()
		}
	}
	flags := d.byte()
	if flags&^knownFlags(version) != 0 {
		return nil, nil, fmt.Errorf("%w: unknown envelope flags %#x", errCorrupt, flags)
	}
	env.SMTPUTF8 = flags&flagSMTPUTF8 != 0
	env.RequireTLS = flags&flagRequireTLS != 0
	env.Hold = flags&flagHold != 0
	env.Body = d.string()
	env.AuthUser = d.string()
	env.Listener = d.string()
	if remote := d.bytes(); d.err == nil {
		if err := env.Remote.UnmarshalBinary(remote); err != nil {
			return nil, nil, fmt.Errorf("%w: remote address: %w", errCorrupt, err)
		}
	}
	helo := d.string()
	ns := d.varint()
	if version >= 3 {
		env.HoldReason = d.string()
	}
	if flags&flagBlob != 0 {
		off, n := d.uvarint(), d.uvarint()
		if off > maxBlobLen || n == 0 || n > maxBlobLen {
			return nil, nil, fmt.Errorf("%w: bad blob reference", errCorrupt)
		}
		ref = &blobRef{off: int64(off), n: int64(n)}
	}
	if flags&flagDSN != 0 {
		if err := d.decodeDSN(env); err != nil {
			return nil, nil, err
		}
	}
	if d.err != nil {
		return nil, nil, d.err
	}
	if len(d.b) != 0 {
		return nil, nil, fmt.Errorf("%w: trailing envelope bytes", errCorrupt)
	}
	env.Helo = helo
	if ns != 0 {
		env.ReceivedAt = time.Unix(0, ns)
	}
	return env, ref, nil
}
