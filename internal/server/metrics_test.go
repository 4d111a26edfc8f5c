package server

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"postern/internal/config"
	"postern/internal/testkit"
)

// exported returns the families registerMetrics exports for cfg, by
// name.
func exported(t *testing.T, cfg *config.Config, signing bool) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	newPartMetrics(reg, cfg)
	registerMetrics(reg, cfg, signing)
	return testkit.Families(t, reg)
}

// TestFeatureMetrics: a feature that is off exports none of its
// metrics (an ACME gauge reading 0 without ACME fires a naive alert at
// once); turned on, it does.
func TestFeatureMetrics(t *testing.T) {
	t.Parallel()
	cfg := config.Dev(t.TempDir())
	cfg.ACME.Enabled = false
	cfg.Abuse.Enabled = false
	cfg.MailAuth.Check = false
	cfg.Autoconfig.Enabled = false
	off := exported(t, cfg, false)
	for name := range off {
		for _, p := range []string{"postern_acme_", "postern_auth_bans", "postern_auth_abuse", "postern_dmarc",
			"postern_mailauth_", "postern_dkim_signatures", "postern_screen", "postern_proxy", "postern_autoconfig",
			"postern_pkcs11", "postern_milter_"} {
			if strings.HasPrefix(name, p) {
				t.Errorf("%s exported with its feature off", name)
			}
		}
	}
	for _, want := range []string{"postern_spool_messages", "postern_queue_bounces_total", "postern_queue_dsns_total",
		"postern_messages_accepted_total", "postern_rejections_total", "postern_data_bytes", "process_cpu_seconds_total",
		"go_goroutines"} {
		if off[want] == nil {
			t.Errorf("%s not exported", want)
		}
	}
	cfg.ACME.Enabled = true
	cfg.Abuse.Enabled = true
	cfg.MailAuth.Check = true
	cfg.Listeners[0].GreetDelay = 1
	cfg.Milters = []config.Milter{{Name: "rspamd", Roles: []config.Role{config.RoleMX}, DefaultAction: "tempfail"}}
	on := exported(t, cfg, true)
	for _, want := range []string{"postern_acme_consecutive_failures", "postern_acme_attempts_total",
		"postern_auth_bans_total", "postern_auth_abuse_alerts_total", "postern_dmarc_results_total",
		"postern_mailauth_policy_actions_total", "postern_milter_default_actions_total"} {
		if on[want] == nil {
			t.Errorf("%s not exported with its feature on", want)
		}
	}
	// A timestamp only once there is a certificate: never 0.
	if on["postern_acme_certificate_expiry_timestamp_seconds"] != nil {
		t.Errorf("an ACME expiry before any certificate")
	}
}
