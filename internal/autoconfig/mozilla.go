package autoconfig

import (
	"encoding/xml"
	"slices"
	"strconv"
)

// clientConfig is Mozilla's autoconfig file, version 1.1
// (wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
type clientConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider provider `xml:"emailProvider"`
}

type provider struct {
	ID               string          `xml:"id,attr"`
	Domain           string          `xml:"domain"`
	DisplayName      string          `xml:"displayName"`
	DisplayShortName string          `xml:"displayShortName"`
	Incoming         []mozillaServer `xml:"incomingServer"`
	Outgoing         []mozillaServer `xml:"outgoingServer"`
}

type mozillaServer struct {
	Type           string   `xml:"type,attr"`
	Hostname       string   `xml:"hostname"`
	Port           string   `xml:"port"`
	SocketType     string   `xml:"socketType"`
	Authentication []string `xml:"authentication"`
	Username       string   `xml:"username"`
}

// mozillaAuth maps SASL mechanisms to the format's authentication
// values, in the listener's order of preference: PLAIN and LOGIN are
// "password-cleartext" (over TLS), CRAM-MD5 "password-encrypted",
// OAUTHBEARER and XOAUTH2 "OAuth2", EXTERNAL "TLS-client-cert". SCRAM
// has no value in the format; a listener offering only SCRAM is named
// with "password-encrypted", the nearest.
func mozillaAuth(e *Endpoint) []string {
	var out []string
	for _, m := range e.mechanisms() {
		var v string
		switch m {
		case "PLAIN", "LOGIN":
			v = "password-cleartext"
		case "CRAM-MD5":
			v = "password-encrypted"
		case "OAUTHBEARER", "XOAUTH2":
			v = "OAuth2"
		case "EXTERNAL":
			v = "TLS-client-cert"
		}
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		out = []string{"password-encrypted"}
	}
	return out
}

// mozilla answers Mozilla's autoconfig: the submission servers (465 with
// socketType SSL first, then 587 with STARTTLS) and the IMAP server,
// with the username %EMAILADDRESS%, which the client replaces by the
// address the user typed.
func (h *Handler) mozilla(rq request) ([]byte, string, error) {
	const user = "%EMAILADDRESS%"
	p := provider{ID: rq.domain, Domain: rq.domain, DisplayName: "Mail for " + rq.domain, DisplayShortName: rq.domain}
	if e := h.o.IMAP; e != nil {
		p.Incoming = append(p.Incoming, mozillaServer{Type: "imap", Hostname: e.Host, Port: strconv.Itoa(e.Port),
			SocketType: "SSL", Authentication: mozillaAuth(e), Username: user})
	}
	if e := h.o.Submissions; e != nil {
		p.Outgoing = append(p.Outgoing, mozillaServer{Type: "smtp", Hostname: e.Host, Port: strconv.Itoa(e.Port),
			SocketType: "SSL", Authentication: mozillaAuth(e), Username: user})
	}
	if e := h.o.Submission; e != nil {
		p.Outgoing = append(p.Outgoing, mozillaServer{Type: "smtp", Hostname: e.Host, Port: strconv.Itoa(e.Port),
			SocketType: "STARTTLS", Authentication: mozillaAuth(e), Username: user})
	}
	b, err := xml.MarshalIndent(clientConfig{Version: "1.1", Provider: p}, "", "  ")
	if err != nil {
		return nil, "", err
	}
	return append([]byte(xml.Header), append(b, '\n')...), "application/xml; charset=utf-8", nil
}
