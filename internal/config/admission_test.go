package config

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestAdmissionDefaults(t *testing.T) {
	c, err := loadString(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.AdmissionTables, defaultAdmissionTables()) {
		t.Errorf("defaults = %+v", c.AdmissionTables)
	}
	if d := Dev(""); !reflect.DeepEqual(d.AdmissionTables, defaultAdmissionTables()) {
		t.Errorf("Dev defaults = %+v", d.AdmissionTables)
	}
	if len(c.Admission.Trusted) != 2 || !c.Admission.Trusted[0].Contains(netip.MustParseAddr("127.0.0.9")) {
		t.Errorf("default trusted = %v, want loopback", c.Admission.Trusted)
	}
	if c, err := loadString(t, "[admission]\ntrusted = []"); err != nil || len(c.Admission.Trusted) != 0 {
		t.Errorf("trusted = []: %v, %v; want none", err, c.Admission.Trusted)
	}
	if c.SendLimits.OverLimit != OverLimitRefuse {
		t.Errorf("default over_limit = %q, want %q", c.SendLimits.OverLimit, OverLimitRefuse)
	}
	if !c.Abuse.Enabled || c.Abuse.IPBanAfter != 10 || c.Abuse.Window != 10*time.Minute || c.Redis.Address != "" {
		t.Errorf("unexpected defaults %+v", c.AdmissionTables)
	}
}

func TestAdmissionTables(t *testing.T) {
	c, err := loadString(t, `
[admission]
trusted = ["10.0.0.0/8", "192.0.2.1"]
max_conns_per_ip = 5
max_conns_per_prefix = 0
max_conns_per_v6_site = 7
ip_rate = 0.5
ip_burst = 3
prefix_rate = 2
prefix_burst = 9
[abuse]
window = "5m"
ip_ban_after = 4
prefix_ban_after = 0
prefix_ban_ips = 2
stuffing_usernames = 3
user_throttle_after = 6
distributed_ips = 8
fail_delay = "500ms"
max_fail_delay = "4s"
ban_duration = "1h"
max_ban = "48h"
alert_strikes = 2
good_ip_ttl = "240h"
[send_limits]
messages_per_hour = 50
sessions = 3
over_limit = "hold"
[send_limits.users."Alice@Example.com"]
messages_per_hour = 500
[send_limits.users.bob]
over_limit = "refuse"
[redis]
address = "127.0.0.1:6379"
username = "postern"
password_file = "redis.pw"
db = 2
key_prefix = "p1:"
[[listener]]
role = "submissions"
address = ":465"
allow = ["192.0.2.0/24", "2001:db8::/32"]
deny = ["192.0.2.128/25"]
`)
	if err != nil {
		t.Fatal(err)
	}
	wantAdm := Admission{
		Trusted:       []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")},
		MaxConnsPerIP: 5, MaxConnsPerPrefix: 0, MaxConnsPerV6Site: 7,
		IPRate: 0.5, IPBurst: 3, PrefixRate: 2, PrefixBurst: 9,
	}
	if !reflect.DeepEqual(c.Admission, wantAdm) {
		t.Errorf("Admission = %+v\nwant %+v", c.Admission, wantAdm)
	}
	wantAbuse := Abuse{Enabled: true, Window: 5 * time.Minute, IPBanAfter: 4, PrefixBanAfter: 0, PrefixBanIPs: 2,
		StuffingUsernames: 3, UserThrottleAfter: 6, DistributedIPs: 8, FailDelay: 500 * time.Millisecond,
		MaxFailDelay: 4 * time.Second, BanDuration: time.Hour, MaxBan: 48 * time.Hour, AlertStrikes: 2, GoodIPTTL: 240 * time.Hour}
	if c.Abuse != wantAbuse {
		t.Errorf("Abuse = %+v\nwant %+v", c.Abuse, wantAbuse)
	}
	wantSL := SendLimits{
		UserSendLimits: UserSendLimits{MessagesPerHour: 50, RecipientsPerHour: DefaultRecipientsPerHour, Sessions: 3, OverLimit: OverLimitHold},
		Users: map[string]UserSendLimits{
			"alice@example.com": {MessagesPerHour: 500, RecipientsPerHour: DefaultRecipientsPerHour, Sessions: 3, OverLimit: OverLimitHold},
			"bob":               {MessagesPerHour: 50, RecipientsPerHour: DefaultRecipientsPerHour, Sessions: 3, OverLimit: OverLimitRefuse},
		},
	}
	if !reflect.DeepEqual(c.SendLimits, wantSL) {
		t.Errorf("SendLimits = %+v\nwant %+v", c.SendLimits, wantSL)
	}
	if c.Redis.Address != "127.0.0.1:6379" || c.Redis.Username != "postern" || c.Redis.DB != 2 || c.Redis.KeyPrefix != "p1:" ||
		!filepath.IsAbs(c.Redis.PasswordFile) || filepath.Base(c.Redis.PasswordFile) != "redis.pw" {
		t.Errorf("Redis = %+v", c.Redis)
	}
	l := c.Listeners[0].ListenerAdmission
	if len(l.Allow) != 2 || l.Deny[0] != netip.MustParsePrefix("192.0.2.128/25") {
		t.Errorf("listener admission = %+v", l)
	}
}

func TestAdmissionErrors(t *testing.T) {
	const sub = "[[listener]]\nrole = \"submission\"\naddress = \":587\"\n"
	checkRefusals(t, selfSigned, []refusal{
		{"[admission]\ntrusted = [\"10.0.0.0/33\"]", `admission.trusted[0]: "10.0.0.0/33" is not an address or a CIDR prefix`},
		{"[admission]\nmax_conns = 3", `unknown key "admission.max_conns"`},
		{"[admission]\nmax_conns_per_ip = -1", `admission.max_conns_per_ip: -1 is out of range`},
		{"[admission]\nip_rate = \"fast\"", `admission.ip_rate: expected a number`},
		{"[admission]\nip_rate = -2.0", `admission.ip_rate: -2 is out of range`},
		{"[admission]\nip_burst = 0", `admission.ip_burst: must be at least 1`},
		{"[abuse]\nban_after = 3", `unknown key "abuse.ban_after"`},
		{"[abuse]\nwindow = \"0s\"", `abuse.window: must be positive`},
		{"[abuse]\nfail_delay = \"20s\"", `abuse.max_fail_delay: is less than abuse.fail_delay`},
		{"[abuse]\nmax_ban = \"1m\"", `abuse.max_ban: is less than abuse.ban_duration`},
		{"[abuse]\nenabled = \"yes\"", `abuse.enabled: expected true or false`},
		{"[send_limits]\nmessages = 3", `unknown key "send_limits.messages"`},
		{"[send_limits.users.bob]\nmsgs = 1", `unknown key "send_limits.users.bob.msgs"`},
		{"[send_limits.users]\nbob = 5", `send_limits.users.bob: expected a table`},
		{"[send_limits]\nover_limit = \"queue\"", `send_limits.over_limit: "queue" is not "refuse" or "hold"`},
		{"[send_limits.users.bob]\nover_limit = 1", `send_limits.users.bob.over_limit: expected a string`},
		{"[redis]\naddress = \"localhost\"", `redis.address: "localhost" is not host:port`},
		{"[redis]\nhost = \"x\"", `unknown key "redis.host"`},
		{sub + "allow = [\"nope\"]", `listener[0].allow[0]: "nope" is not an address or a CIDR prefix`},
		{sub + "allow = [\"192.0.2.0/25\"]\ndeny = [\"192.0.2.0/24\"]", `listener[0].allow[0]: 192.0.2.0/25 is wholly inside deny 192.0.2.0/24`},
	})
}
