// Package admissiontest holds what the tests of the admission package and
// of its users (smtpd, admin) share. It is imported by tests only.
package admissiontest

import (
	"time"

	"postern/internal/admission"
)

// Abuse returns the AbuseOptions the tests are written against, the
// values of Postern's default configuration (ban after 10 failures of an
// address, 5 usernames, 5 networks; 1s to 10s delays), changed by change
// when it is not nil. The engine takes them as they are: a count the
// change sets to 0 is off.
func Abuse(change func(o *admission.AbuseOptions)) admission.AbuseOptions {
	o := admission.AbuseOptions{
		Window: 10 * time.Minute, IPBanAfter: 10, PrefixBanAfter: 30, PrefixBanIPs: 3, StuffingUsers: 5,
		UserThrottleAfter: 3, DistributedIPs: 5, FailDelay: time.Second, MaxFailDelay: 10 * time.Second,
		BanDuration: 15 * time.Minute, MaxBan: 24 * time.Hour, AlertStrikes: 3, GoodIPTTL: 30 * 24 * time.Hour,
	}
	if change != nil {
		change(&o)
	}
	return o
}
