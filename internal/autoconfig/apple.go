package autoconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// apple answers an Apple configuration profile (Apple's Configuration
// Profile Reference): one payload of type com.apple.mail.managed, an
// IMAP account for the address with the IMAP server and one submission
// server (465 when there is one, else 587; Apple Mail uses STARTTLS on
// 587), the address as user name, no password (the device asks for it;
// OutgoingPasswordSameAsIncomingPassword). Apple's payload requires an
// incoming server: without Options.IMAP there is no profile (404). The
// identifiers and UUIDs are derived from the address, so that opening
// the profile again replaces the one installed. The profile is not
// signed.
func (h *Handler) apple(rq request) ([]byte, string, error) {
	if h.o.IMAP == nil {
		return nil, "", fail(http.StatusNotFound, "no IMAP server configured: an Apple profile needs one ([autoconfig] imap_host)")
	}
	out := h.o.Submissions
	if out == nil {
		out = h.o.Submission
	}
	auth := "EmailAuthPassword"
	if !out.offers(passwordMechanisms...) && out.offers("CRAM-MD5") {
		auth = "EmailAuthCRAMMD5"
	}
	id := reverseDomain(rq.domain) + ".autoconfig"
	sum := sha256.Sum256([]byte("postern autoconfig\x00" + rq.addr))
	tag := fmt.Sprintf("%x", sum[:6])
	mail := plistDict{
		{"EmailAccountDescription", rq.addr},
		{"EmailAccountType", "EmailTypeIMAP"},
		{"EmailAddress", rq.addr},
		{"IncomingMailServerAuthentication", "EmailAuthPassword"},
		{"IncomingMailServerHostName", h.o.IMAP.Host},
		{"IncomingMailServerPortNumber", h.o.IMAP.Port},
		{"IncomingMailServerUseSSL", true},
		{"IncomingMailServerUsername", rq.addr},
		{"OutgoingMailServerAuthentication", auth},
		{"OutgoingMailServerHostName", out.Host},
		{"OutgoingMailServerPortNumber", out.Port},
		{"OutgoingMailServerUseSSL", true},
		{"OutgoingMailServerUsername", rq.addr},
		{"OutgoingPasswordSameAsIncomingPassword", true},
		{"PayloadDescription", "The mail account " + rq.addr},
		{"PayloadDisplayName", "Mail: " + rq.addr},
		{"PayloadIdentifier", id + ".mail." + tag},
		{"PayloadType", "com.apple.mail.managed"},
		{"PayloadUUID", uuidOf(sum[:], 1)},
		{"PayloadVersion", 1},
	}
	profile := plistDict{
		{"PayloadContent", []any{mail}},
		{"PayloadDescription", "Sets up the mail account " + rq.addr + " (no password inside: the device asks for it)."},
		{"PayloadDisplayName", "Mail for " + rq.domain},
		{"PayloadIdentifier", id + "." + tag},
		{"PayloadRemovalDisallowed", false},
		{"PayloadType", "Configuration"},
		{"PayloadUUID", uuidOf(sum[:], 2)},
		{"PayloadVersion", 1},
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n")
	writePlist(&b, profile, 0)
	b.WriteString("</plist>\n")
	return b.Bytes(), "application/x-apple-aspen-config", nil
}

// reverseDomain returns "com.example" for "example.com".
func reverseDomain(d string) string {
	labels := strings.Split(d, ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

// uuidOf formats a UUID (RFC 9562 §5.8, version 8: custom) from sum and
// n, so that each payload of a profile has its own.
func uuidOf(sum []byte, n byte) string {
	h := sha256.Sum256(append([]byte{n}, sum...))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // variant RFC 9562
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]))
}

// plistDict is a property list dictionary, in order.
type plistDict []struct {
	key string
	val any
}

// writePlist writes v as XML property list: a plistDict, a []any, a
// string, an int or a bool; strings are escaped.
func writePlist(b *bytes.Buffer, v any, depth int) {
	ind := strings.Repeat("\t", depth)
	switch v := v.(type) {
	case plistDict:
		b.WriteString(ind + "<dict>\n")
		for _, kv := range v {
			b.WriteString(ind + "\t<key>")
			xml.EscapeText(b, []byte(kv.key))
			b.WriteString("</key>\n")
			writePlist(b, kv.val, depth+1)
		}
		b.WriteString(ind + "</dict>\n")
	case []any:
		b.WriteString(ind + "<array>\n")
		for _, e := range v {
			writePlist(b, e, depth+1)
		}
		b.WriteString(ind + "</array>\n")
	case string:
		b.WriteString(ind + "<string>")
		xml.EscapeText(b, []byte(v))
		b.WriteString("</string>\n")
	case int:
		b.WriteString(ind + "<integer>" + strconv.Itoa(v) + "</integer>\n")
	case bool:
		if v {
			b.WriteString(ind + "<true/>\n")
		} else {
			b.WriteString(ind + "<false/>\n")
		}
	default:
		panic(fmt.Sprintf("autoconfig: plist of %T", v))
	}
}
