package policy

import (
	"crypto/tls"
	"fmt"
)

// The reasons of an AuditError, also the values of the reason label of
// postern_policy_mtasts_testing_failures_total ("mx" counts the hosts a
// testing policy does not list, found by Plan).
const (
	AuditNoTLS       = "starttls"    // the session is not encrypted
	AuditCertificate = "certificate" // the certificate is not valid for the MX name
	auditMX          = "mx"
)

// AuditError is what enforce mode would have refused in a connection to
// a host whose domain's MTA-STS policy is in testing mode.
type AuditError struct {
	Reason string // AuditNoTLS or AuditCertificate
	Host   string
	Err    error // the certificate check's error; nil for AuditNoTLS
}

func (e *AuditError) Error() string {
	if e.Reason == AuditNoTLS {
		return fmt.Sprintf("policy: %s: no TLS, which an enforced MTA-STS policy requires", e.Host)
	}
	return e.Err.Error()
}

func (e *AuditError) Unwrap() error { return e.Err }

// Audit checks a connection to a host whose domain publishes an MTA-STS
// policy in testing mode against what enforce mode would require: TLS (cs
// not nil) and a WebPKI certificate valid for Name (RFC 8461 §4.1). It
// returns nil when the connection passes or there is nothing to audit,
// otherwise an *AuditError. A failure must not stop delivery (RFC 8461
// §5: in testing mode the sender reports failures, as TLS-RPT does, and
// delivers anyway); Audit counts each one in
// postern_policy_mtasts_testing_failures_total and the caller logs it.
func (h *Host) Audit(cs *tls.ConnectionState) error {
	if h.audit == nil {
		return nil
	}
	var e *AuditError
	if cs == nil {
		e = &AuditError{Reason: AuditNoTLS, Host: h.Name}
	} else if err := h.audit(*cs); err != nil {
		e = &AuditError{Reason: AuditCertificate, Host: h.Name, Err: err}
	}
	if e == nil {
		return nil
	}
	h.auditCount.WithLabelValues(e.Reason).Inc()
	return e
}
