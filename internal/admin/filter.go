package admin

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"postern/internal/addrkey"
	"postern/internal/spool"
)

// Filter picks recipients in the queue, for `postern queue list` and the
// changes of change.go; the server evaluates it. A recipient is picked
// when every field set matches; a message is listed, or changed, when
// one of its recipients is picked. Names and domains compare by their
// addrkey keys: ASCII case does not matter, an IDN matches its A-label.
type Filter struct {
	// From matches the envelope sender: an address, "<>" for the null
	// sender (bounces), or a domain (no "@") for every sender at it.
	From string `json:"from,omitempty"`
	// To matches a recipient address.
	To string `json:"to,omitempty"`
	// Domain matches every recipient at a domain (not its subdomains).
	Domain string `json:"domain,omitempty"`
	// State matches a recipient's state, one of States.
	State string `json:"state,omitempty"`
}

// The recipient states a Filter's State may name. They exclude each
// other: a recipient being delivered now is "active" only, whatever its
// stored status.
const (
	// StatePending is a recipient not yet tried.
	StatePending = "pending"
	// StateDeferred is a recipient whose last attempt failed for the
	// time being, waiting for its next attempt.
	StateDeferred = "deferred"
	// StateHeld is a recipient held, by an operator or by a send limit:
	// nothing is tried until it is released.
	StateHeld = "held"
	// StateActive is a recipient being delivered now: its deliverer has
	// it (from the call until it returns, queue.Runner.Active).
	StateActive = "active"
)

// States are the values of Filter.State.
var States = []string{StatePending, StateDeferred, StateHeld, StateActive}

// Empty reports whether f picks every recipient.
func (f Filter) Empty() bool { return f == Filter{} }

// Check reports what is wrong with f, in the words of `postern queue`'s
// flags (--from, --to, --domain, --state).
func (f Filter) Check() error {
	_, err := f.compile()
	return err
}

// matcher is a Filter made ready to match: its keys.
type matcher struct {
	from       string // the sender's key; "" when From is not an address
	nullSender bool
	fromDomain string // the key of From when it is a domain
	to         string
	domain     string
	state      string
}

func (f Filter) compile() (*matcher, error) {
	m := &matcher{state: f.State}
	switch v := f.From; {
	case v == "":
	case v == "<>":
		m.nullSender = true
	case strings.Contains(v, "@"):
		k, err := addressKey(v)
		if err != nil {
			return nil, fmt.Errorf("--from %q: %v; give an address, a domain, or <> for bounces", v, err)
		}
		m.from = k
	default:
		k, err := addrkey.Domain(v)
		if err != nil {
			return nil, fmt.Errorf("--from %q is neither an address nor a domain", v)
		}
		m.fromDomain = k
	}
	if v := f.To; v != "" {
		if !strings.Contains(v, "@") {
			return nil, fmt.Errorf("--to %q is not an address; for every recipient at a domain, use --domain %s", v, v)
		}
		k, err := addressKey(v)
		if err != nil {
			return nil, fmt.Errorf("--to %q: %v", v, err)
		}
		m.to = k
	}
	if v := f.Domain; v != "" {
		if strings.Contains(v, "@") {
			return nil, fmt.Errorf("--domain %q is an address; give the domain alone (%s), or use --to for one recipient",
				v, addrkey.DomainOf(v))
		}
		k, err := addrkey.Domain(v)
		if err != nil {
			return nil, fmt.Errorf("--domain %q is not a domain", v)
		}
		m.domain = k
	}
	if f.State != "" && !isState(f.State) {
		return nil, fmt.Errorf("--state %q: want one of %s", f.State, strings.Join(States, ", "))
	}
	return m, nil
}

// addressKey is addrkey.Address for an address that must have a local
// part and a valid domain.
func addressKey(a string) (string, error) {
	i := strings.LastIndexByte(a, '@')
	if i <= 0 || i == len(a)-1 {
		return "", errors.New("not an address (local@domain)")
	}
	k, err := addrkey.Address(a)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid domain", a[i+1:])
	}
	return k, nil
}

func isState(s string) bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// sender reports whether a message from from can be picked.
func (m *matcher) sender(from string) bool {
	switch {
	case m.nullSender:
		return from == ""
	case m.from != "":
		return from != "" && addrkey.Key(from) == m.from
	case m.fromDomain != "":
		return from != "" && addrkey.DomainKey(addrkey.DomainOf(from)) == m.fromDomain
	}
	return true
}

// recipient reports whether recipient rcpt, in state (as rcptState
// names it), is picked (its message's sender aside).
func (m *matcher) recipient(rcpt, state string) bool {
	switch {
	case m.to != "" && addrkey.Key(rcpt) != m.to:
		return false
	case m.domain != "" && addrkey.DomainKey(addrkey.DomainOf(rcpt)) != m.domain:
		return false
	case m.state != "" && state != m.state:
		return false
	}
	return true
}

// rcptState is a recipient's state as a Filter names it: "active" while
// it is being delivered, else its status.
func rcptState(st spool.RecipientState, active bool) string {
	if active {
		return StateActive
	}
	return st.Status.String()
}

// messages returns the messages of msgs that m picks, each with only
// the recipients m picks (msgs is reused).
func (m *matcher) messages(msgs []Message) []Message {
	out := msgs[:0]
	for _, msg := range msgs {
		if !m.sender(msg.From) {
			continue
		}
		picked := msg.Recipients[:0]
		for _, r := range msg.Recipients {
			st := r.Status
			if r.Active {
				st = StateActive
			}
			if m.recipient(r.Addr, st) {
				picked = append(picked, r)
			}
		}
		if msg.Recipients = picked; len(picked) > 0 {
			out = append(out, msg)
		}
	}
	return out
}

// values returns f as URL query parameters (GET /queue).
func (f Filter) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"from": f.From, "to": f.To, "domain": f.Domain, "state": f.State} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// filterOf reads a Filter from URL query parameters.
func filterOf(q url.Values) Filter {
	return Filter{From: q.Get("from"), To: q.Get("to"), Domain: q.Get("domain"), State: q.Get("state")}
}
