package autoconfig

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The structural checks below are written from the published formats:
//
//   - Mozilla: "Thunderbird:Autoconfiguration:ConfigFileFormat"
//     (wiki.mozilla.org), the definition MDN's "Autoconfig: How to create
//     a configuration file" points to: clientConfig version="1.1", one
//     emailProvider id=DOMAIN with domain, displayName, displayShortName,
//     then incomingServer type="imap"|"pop3" and outgoingServer
//     type="smtp", each with hostname, port, socketType
//     (plain|SSL|STARTTLS), one or more authentication
//     (password-cleartext, password-encrypted, NTLM, GSSAPI,
//     client-IP-address, TLS-client-cert, OAuth2, none) and username.
//   - Microsoft: "POX Autodiscover XML elements for Exchange"
//     (learn.microsoft.com) and [MS-OXDSCLI] §2.2.4: Autodiscover in the
//     responseschema/2006 namespace, Response in the
//     outlook/responseschema/2006a namespace, Account with AccountType
//     (email), Action (settings, redirectAddr, redirectUrl) and
//     Protocol elements whose children are those the reference lists
//     (Type IMAP|POP3|SMTP|EXCH|EXPR|WEB, Server, Port, LoginName,
//     DomainRequired, SPA, SSL, Encryption None|SSL|TLS|Auto,
//     AuthRequired, UsePOPAuth, SMTPLast; on/off flags).

// mozillaAuthValues are the format's authentication values.
var mozillaAuthValues = []string{"password-cleartext", "password-encrypted", "NTLM", "GSSAPI",
	"client-IP-address", "TLS-client-cert", "OAuth2", "none"}

// checkMozilla returns what in root breaks Mozilla's format.
func checkMozilla(root *node) []string {
	var p []string
	bad := func(f string, a ...any) { p = append(p, fmt.Sprintf(f, a...)) }
	if root == nil || root.Name.Local != "clientConfig" || root.Name.Space != "" {
		return []string{"root is not <clientConfig>"}
	}
	if root.Attrs["version"] != "1.1" {
		bad("clientConfig version %q, want 1.1", root.Attrs["version"])
	}
	if len(root.Children) != 1 || root.Children[0].Name.Local != "emailProvider" {
		return append(p, "clientConfig must hold one emailProvider")
	}
	ep := root.Children[0]
	if ep.Attrs["id"] == "" {
		bad("emailProvider without id")
	}
	order := []string{"domain", "displayName", "displayShortName", "incomingServer", "outgoingServer"}
	last := 0
	for _, c := range ep.Children {
		i := slices.Index(order, c.Name.Local)
		if i < 0 {
			bad("unexpected <%s> in emailProvider", c.Name.Local)
			continue
		}
		if i < last {
			bad("<%s> out of order", c.Name.Local)
		}
		last = i
	}
	if len(ep.all("domain")) == 0 || len(ep.all("displayName")) != 1 || len(ep.all("outgoingServer")) == 0 {
		bad("emailProvider needs domain, one displayName and an outgoingServer")
	}
	for _, s := range append(ep.all("incomingServer"), ep.all("outgoingServer")...) {
		typ := s.Attrs["type"]
		if s.Name.Local == "outgoingServer" && typ != "smtp" || s.Name.Local == "incomingServer" && typ != "imap" && typ != "pop3" {
			bad("<%s type=%q>", s.Name.Local, typ)
		}
		count := map[string]int{}
		for _, c := range s.Children {
			count[c.Name.Local]++
			v := strings.TrimSpace(c.Text)
			switch c.Name.Local {
			case "hostname", "username":
				if v == "" {
					bad("empty <%s>", c.Name.Local)
				}
			case "port":
				if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
					bad("port %q", v)
				}
			case "socketType":
				if !slices.Contains([]string{"plain", "SSL", "STARTTLS"}, v) {
					bad("socketType %q", v)
				}
			case "authentication":
				if !slices.Contains(mozillaAuthValues, v) {
					bad("authentication %q", v)
				}
			default:
				bad("unexpected <%s> in a server", c.Name.Local)
			}
		}
		for _, need := range []string{"hostname", "port", "socketType", "username"} {
			if count[need] != 1 {
				bad("<%s> has %d <%s>", s.Name.Local, count[need], need)
			}
		}
		if count["authentication"] == 0 {
			bad("<%s> without authentication", s.Name.Local)
		}
	}
	return p
}

// checkAutodiscover returns what in root breaks the POX response format.
func checkAutodiscover(root *node) []string {
	var p []string
	bad := func(f string, a ...any) { p = append(p, fmt.Sprintf(f, a...)) }
	if root == nil || root.Name.Local != "Autodiscover" || root.Name.Space != nsResponseRoot {
		return []string{"root is not <Autodiscover> in " + nsResponseRoot}
	}
	if len(root.Children) != 1 || root.Children[0].Name.Local != "Response" || root.Children[0].Name.Space != nsOutlookAnswers {
		return []string{"Autodiscover must hold one Response in " + nsOutlookAnswers}
	}
	resp := root.Children[0]
	accs := resp.all("Account")
	if len(accs) != 1 {
		return append(p, "Response must hold one Account")
	}
	acc := accs[0]
	flags := []string{"DomainRequired", "SPA", "SSL", "AuthRequired", "UsePOPAuth", "SMTPLast"}
	allowed := append([]string{"Type", "Server", "Port", "LoginName", "DomainName", "Encryption", "TTL"}, flags...)
	for _, c := range acc.Children {
		v := strings.TrimSpace(c.Text)
		switch c.Name.Local {
		case "AccountType":
			if v != "email" {
				bad("AccountType %q", v)
			}
		case "Action":
			if !slices.Contains([]string{"settings", "redirectAddr", "redirectUrl"}, v) {
				bad("Action %q", v)
			}
		case "Protocol":
			for _, f := range c.Children {
				fv := strings.TrimSpace(f.Text)
				switch {
				case !slices.Contains(allowed, f.Name.Local):
					bad("unexpected <%s> in Protocol", f.Name.Local)
				case f.Name.Local == "Type" && !slices.Contains([]string{"IMAP", "POP3", "SMTP", "EXCH", "EXPR", "WEB"}, fv):
					bad("Type %q", fv)
				case f.Name.Local == "Port":
					if n, err := strconv.Atoi(fv); err != nil || n < 1 || n > 65535 {
						bad("Port %q", fv)
					}
				case f.Name.Local == "Encryption" && !slices.Contains([]string{"None", "SSL", "TLS", "Auto"}, fv):
					bad("Encryption %q", fv)
				case slices.Contains(flags, f.Name.Local) && fv != "on" && fv != "off":
					bad("%s %q, want on or off", f.Name.Local, fv)
				}
			}
			if len(c.all("Type")) != 1 || len(c.all("Server")) != 1 || len(c.all("Port")) != 1 {
				bad("Protocol needs one Type, Server and Port")
			}
		default:
			bad("unexpected <%s> in Account", c.Name.Local)
		}
	}
	if len(acc.all("AccountType")) != 1 || len(acc.all("Action")) != 1 || len(acc.all("Protocol")) == 0 {
		bad("Account needs AccountType, Action and a Protocol")
	}
	return p
}
