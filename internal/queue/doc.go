// Package queue implements Postern's queue runner: it takes the messages
// of the spool (internal/spool) and delivers them.
//
// The Runner takes messages from the spool and delivers each due
// recipient: local ones one by one through a Deliverer, remote ones
// grouped by domain through a BatchDeliverer, with a bound on remote
// deliveries in flight. Temporary failures are retried on a RetryPolicy
// (exponential backoff with jitter, one timer for the whole queue, a
// delay warning, a give-up time); permanent failures, expiry and routing
// loops send the sender a DSN (RFC 3464), itself spooled like any
// message, from the null sender so that it never bounces in turn.
package queue
