package remote

import (
	"context"
	"fmt"

	"postern/internal/queue"
	"postern/internal/smtp"
)

// DeliverBatch delivers one of the queue's per-domain batches (env's
// message msg to rcpts) and maps each recipient's Result to the queue's
// Outcome: a Permanent failure is wrapped by queue.Permanent, any other
// failure is retried, and a reply becomes the DSN's Diagnostic-Code. It
// implements queue.BatchDeliverer.
func (d *Deliverer) DeliverBatch(ctx context.Context, env *smtp.Envelope, rcpts []string, msg *smtp.Message) []queue.Outcome {
	results := d.Deliver(ctx, NewMessage(env, rcpts, msg)) // SMTPUTF8, TLS-Required: No
	out := make([]queue.Outcome, len(results))
	for i, r := range results {
		out[i] = outcome(r)
	}
	return out
}

// outcome is the queue's Outcome of r.
func outcome(r Result) queue.Outcome {
	ss := r.Session
	o := queue.Outcome{Rcpt: r.Rcpt, Status: r.Enhanced, RemoteMTA: r.Host, Relay: queue.Relay{
		Addr: ss.Addr, TLSVersion: ss.TLSVersion, TLSCipher: ss.TLSCipher, TLSVerification: ss.Verification,
		Connect: ss.Connect, Transmit: ss.Transmit, Reply: ss.Reply, RemoteID: ss.RemoteID,
	}, NextHopDSN: r.NextHopDSN}
	if r.Code != 0 {
		o.Diagnostic = fmt.Sprintf("smtp; %d %s %s", r.Code, r.Enhanced, r.Text) // RFC 3464 §2.3.6
	}
	if r.Delivered {
		return o
	}
	err := r.Err
	if err == nil {
		err = fmt.Errorf("%s: %d %s %s", r.Host, r.Code, r.Enhanced, r.Text)
	}
	if r.Permanent {
		err = queue.Permanent(err)
	}
	o.Err = err
	return o
}
