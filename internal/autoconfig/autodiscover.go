package autoconfig

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strings"
)

// The namespaces of Autodiscover's POX messages ([MS-OXDSCLI] §2.2.3,
// §2.2.4): the request, the response's root, and the Outlook response
// schema, the one a mail client asks for.
const (
	nsRequest        = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	nsResponseRoot   = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	nsOutlookAnswers = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

// adRequest is a POX Autodiscover request ([MS-OXDSCLI] §2.2.3).
type adRequest struct {
	XMLName xml.Name `xml:"Autodiscover"`
	Request struct {
		EMailAddress             string `xml:"EMailAddress"`
		AcceptableResponseSchema string `xml:"AcceptableResponseSchema"`
	} `xml:"Request"`
}

// readAutodiscoverRequest reads the address from a POST's body: at most
// MaxBodySize octets of XML whose root is Autodiscover (in the request
// namespace, or none), asking for the Outlook response schema (or
// none). Go's XML decoder expands no entity but the five of XML, so a
// body cannot grow in the parsing.
func readAutodiscoverRequest(r *http.Request) (string, error) {
	if r.ContentLength > MaxBodySize {
		return "", fail(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", MaxBodySize)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodySize))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return "", fail(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", MaxBodySize)
	}
	if err != nil {
		return "", fail(http.StatusBadRequest, "request body unreadable")
	}
	return ParseAutodiscoverRequest(body)
}

// ParseAutodiscoverRequest returns the EMailAddress of a POX
// Autodiscover request ([MS-OXDSCLI] §2.2.3), checking the root
// element, its namespace and the AcceptableResponseSchema; errors say
// what is wrong.
func ParseAutodiscoverRequest(body []byte) (string, error) {
	var req adRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		return "", fail(http.StatusBadRequest, "request is not an Autodiscover XML request")
	}
	if ns := req.XMLName.Space; ns != "" && ns != nsRequest {
		return "", fail(http.StatusBadRequest, "request namespace %q, want %q", ns, nsRequest)
	}
	if s := strings.TrimSpace(req.Request.AcceptableResponseSchema); s != "" && s != nsOutlookAnswers {
		return "", fail(http.StatusBadRequest, "only the response schema %s is served (mail settings, not Exchange ActiveSync)", nsOutlookAnswers)
	}
	addr := strings.TrimSpace(req.Request.EMailAddress)
	if addr == "" {
		return "", fail(http.StatusBadRequest, "request without EMailAddress")
	}
	return addr, nil
}

// adResponse is a POX Autodiscover answer with the Outlook response
// schema ([MS-OXDSCLI] §2.2.4).
type adResponse struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
		Account struct {
			AccountType string       `xml:"AccountType"`
			Action      string       `xml:"Action"`
			Protocols   []adProtocol `xml:"Protocol"`
		} `xml:"Account"`
	}
}

// adProtocol is one server ([MS-OXDSCLI] §2.2.4.1.1.2.4). SSL "on" is
// TLS; Encryption tells implicit TLS ("SSL") from STARTTLS ("TLS").
type adProtocol struct {
	Type           string `xml:"Type"`
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	LoginName      string `xml:"LoginName,omitempty"`
	DomainRequired string `xml:"DomainRequired"`
	SPA            string `xml:"SPA"`
	SSL            string `xml:"SSL"`
	Encryption     string `xml:"Encryption"`
	AuthRequired   string `xml:"AuthRequired"`
	UsePOPAuth     string `xml:"UsePOPAuth,omitempty"`
	SMTPLast       string `xml:"SMTPLast,omitempty"`
}

// autodiscover answers Autodiscover: an email account ("settings") with
// the IMAP server and the submission servers (465 first), the address
// as login name (none when the request named no address), no SPA
// (NTLM), TLS always, authentication required.
func (h *Handler) autodiscover(rq request) ([]byte, string, error) {
	var a adResponse
	acc := &a.Response.Account
	acc.AccountType, acc.Action = "email", "settings"
	proto := func(typ string, e *Endpoint, enc string) adProtocol {
		p := adProtocol{Type: typ, Server: e.Host, Port: e.Port, LoginName: rq.addr, DomainRequired: "off",
			SPA: "off", SSL: "on", Encryption: enc, AuthRequired: "on"}
		if typ == "SMTP" {
			p.UsePOPAuth, p.SMTPLast = "off", "off"
		}
		return p
	}
	if e := h.o.IMAP; e != nil {
		acc.Protocols = append(acc.Protocols, proto("IMAP", e, "SSL"))
	}
	if e := h.o.Submissions; e != nil {
		acc.Protocols = append(acc.Protocols, proto("SMTP", e, "SSL"))
	}
	if e := h.o.Submission; e != nil {
		acc.Protocols = append(acc.Protocols, proto("SMTP", e, "TLS"))
	}
	b, err := xml.MarshalIndent(a, "", "  ")
	if err != nil {
		return nil, "", err
	}
	return append([]byte(xml.Header), append(b, '\n')...), "text/xml; charset=utf-8", nil
}
