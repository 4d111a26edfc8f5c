// Package loadgen implements an SMTP load generator: many concurrent
// client sessions (plain, STARTTLS or implicit TLS, with AUTH PLAIN)
// sending messages of a given size, measuring messages per second and the
// latency of each message; and an idle mode that opens many sessions and
// holds them. It speaks only the client side of RFC 5321, through
// smtp.Client (the client core outbound delivery uses), and works
// against any SMTP server.
package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"postern/internal/addrkey"
	"postern/internal/smtp"
)

// Mode is how a session gets its TLS.
type Mode string

// The modes.
const (
	ModePlain    Mode = "plain"    // no TLS
	ModeSTARTTLS Mode = "starttls" // STARTTLS after the first EHLO (RFC 3207)
	ModeTLS      Mode = "tls"      // TLS from the first byte (RFC 8314)
)

// Options describe a load. Addr, From and Rcpt are required.
type Options struct {
	Addr string // host:port
	Mode Mode   // default ModePlain
	// TLSConfig is used for STARTTLS and implicit TLS; nil means
	// verification against the system roots with the host of Addr as
	// ServerName.
	TLSConfig   *tls.Config
	User, Pass  string   // AUTH PLAIN when User is set
	Hello       string   // EHLO name; default "loadgen.invalid"
	From        string   // envelope sender
	Rcpt        []string // envelope recipients
	Concurrency int      // sessions at once; default 1
	Messages    int      // messages in all; 0: until Duration
	PerConn     int      // messages per session; default 1
	Size        int      // approximate message size in bytes; default 1024
	Duration    time.Duration
	// Timeout bounds each exchange (dial, handshake, command); default 30s.
	Timeout time.Duration
	// Resume lets sessions resume earlier TLS sessions (tickets), as
	// mail clients do: Run gives TLSConfig a shared session cache.
	Resume bool
}

func (o Options) withDefaults() (Options, error) {
	if o.Addr == "" || o.From == "" || len(o.Rcpt) == 0 {
		return o, errors.New("loadgen: Addr, From and Rcpt are required")
	}
	switch o.Mode {
	case "":
		o.Mode = ModePlain
	case ModePlain, ModeSTARTTLS, ModeTLS:
	default:
		return o, fmt.Errorf("loadgen: unknown mode %q", o.Mode)
	}
	if o.Messages <= 0 && o.Duration <= 0 {
		return o, errors.New("loadgen: set Messages or Duration")
	}
	if o.TLSConfig == nil {
		host, _, err := net.SplitHostPort(o.Addr)
		if err != nil {
			return o, fmt.Errorf("loadgen: %w", err)
		}
		o.TLSConfig = &tls.Config{ServerName: host}
	}
	if o.Resume && o.TLSConfig.ClientSessionCache == nil {
		o.TLSConfig = o.TLSConfig.Clone()
		o.TLSConfig.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	if o.Hello == "" {
		o.Hello = "loadgen.invalid"
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.PerConn <= 0 {
		o.PerConn = 1
	}
	if o.Size <= 0 {
		o.Size = 1024
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	return o, nil
}

// Result is the outcome of a Run. Latency is per message, from MAIL FROM
// to the reply after the message; Setup is per session, from dial to
// ready for MAIL (TCP, TLS, EHLO, AUTH).
type Result struct {
	Messages   int           // messages accepted with 250
	Errors     int           // sessions or messages that failed
	Elapsed    time.Duration // from start to the last session's end
	PerSecond  float64       // Messages / Elapsed
	Latency    Percentiles
	Setup      Percentiles
	Sessions   int    // sessions set up
	FirstError string // the first error seen, if any
}

// Percentiles summarizes a set of durations.
type Percentiles struct {
	P50, P90, P99, Max time.Duration
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(d))+0.5) - 1
		return d[max(0, min(i, len(d)-1))]
	}
	return Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: d[len(d)-1]}
}

// Message builds a message of about size bytes from from to rcpt, with
// CRLF line ends, for smtp.Client.Data (which dot-stuffs it and ends it
// with CRLF.CRLF).
func Message(from, rcpt string, size int) *smtp.Message {
	host := "loadgen.invalid"
	if d := addrkey.DomainOf(from); d != "" {
		host = d
	}
	var b strings.Builder
	b.Grow(size + 256)
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: loadgen\r\n", from, rcpt)
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%d.loadgen@%s>\r\n\r\n", time.Now().UnixNano(), host)
	hdr := b.Len()
	const line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	m := []byte(b.String())
	return &smtp.Message{Header: m[:hdr], Body: smtp.BodyBytes(m[hdr:])}
}

// Run drives the load described by o until Messages are sent, Duration
// has passed or ctx is done, and reports what it saw. A failed message
// counts as an error and ends its session; the worker then opens a new
// one. Run returns an error only for invalid Options.
func Run(ctx context.Context, o Options) (Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	msg := Message(o.From, o.Rcpt[0], o.Size)
	var (
		left     atomic.Int64 // messages not yet claimed
		mu       sync.Mutex
		res      Result
		lat, set []time.Duration
		wg       sync.WaitGroup
	)
	unlimited := o.Messages <= 0
	left.Store(int64(o.Messages))
	claim := func() bool {
		if ctx.Err() != nil {
			return false
		}
		return unlimited || left.Add(-1) >= 0
	}
	fail := func(err error) {
		mu.Lock()
		res.Errors++
		if res.FirstError == "" {
			res.FirstError = err.Error()
		}
		mu.Unlock()
	}
	start := time.Now()
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var myLat, mySet []time.Duration
			defer func() {
				mu.Lock()
				lat = append(lat, myLat...)
				set = append(set, mySet...)
				mu.Unlock()
			}()
			for claim() {
				t0 := time.Now()
				k, err := dial(&o)
				if err != nil {
					fail(err)
					continue
				}
				mySet = append(mySet, time.Since(t0))
				for i := 0; ; {
					t1 := time.Now()
					if err := k.send(o.From, o.Rcpt, msg); err != nil {
						fail(err)
						break
					}
					myLat = append(myLat, time.Since(t1))
					if i++; i >= o.PerConn || !claim() {
						break
					}
				}
				k.quit()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Messages = len(lat)
	res.Sessions = len(set)
	if res.Elapsed > 0 {
		res.PerSecond = float64(res.Messages) / res.Elapsed.Seconds()
	}
	res.Latency = percentiles(lat)
	res.Setup = percentiles(set)
	return res, nil
}
