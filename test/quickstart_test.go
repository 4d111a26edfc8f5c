package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestEmbeddedDefault runs the README's quick start: `postern serve` with no
// configuration file and no flag, in an empty directory, then a first
// message with swaks, curl and Python's smtplib on the embedded default's
// fixed ports.
func TestEmbeddedDefault(t *testing.T) {
	integration(t)
	swaks := needTool(t, "swaks")
	curl := needTool(t, "curl")
	python := needTool(t, "python3")

	dir := t.TempDir()
	s := &server{t: t, data: filepath.Join(dir, "postern-data"), bare: true,
		mx: "127.0.0.1:2525", sub: "127.0.0.1:2587", subs: "127.0.0.1:2465", http: "127.0.0.1:2580"}
	s.start()
	// It says that it runs on the embedded default, for want of a file.
	if !strings.Contains(s.stderr.String(), "postern: no configuration file (no --config, no $POSTERN_CONFIG, no "+systemConfig+"): using the embedded default, with its data in ./postern-data") {
		t.Errorf("no word of the embedded default on stderr:\n%s", s.stderr.String())
	}

	pwFile := filepath.Join(s.data, "initial-password")
	st, err := os.Stat(pwFile)
	if err != nil {
		t.Fatalf("initial password file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("initial-password mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(pwFile)
	pass := strings.TrimSpace(string(b))
	if len(pass) < 16 {
		t.Fatalf("initial password %q too short", pass)
	}
	if !strings.Contains(s.stdout.String(), pass) {
		t.Errorf("initial password not printed on first start; stdout:\n%s", s.stdout.String())
	}
	for _, f := range []string{"tls/cert.pem", "tls/key.pem"} {
		if _, err := os.Stat(filepath.Join(s.data, f)); err != nil {
			t.Errorf("self-signed certificate: %v", err)
		}
	}
	const user = "postmaster@localhost"
	if strings.Contains(s.stderr.String(), "reaches nobody") {
		t.Errorf("the quick start warns of the postmaster address:\n%s", s.stderr.String())
	}

	t.Run("swaks STARTTLS AUTH PLAIN on 587", func(t *testing.T) {
		out, err := exec.Command(swaks, "--server", s.sub, "--tls", "--auth", "PLAIN",
			"--auth-user", user, "--auth-password", pass,
			"--from", user, "--to", user, "--header", "Subject: swaks-587-marker",
			"--body", "hello from swaks").CombinedOutput()
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		msg := s.waitMaildir(user, "swaks-587-marker", "hello from swaks")
		for _, h := range []string{"Received: from ", "with ESMTPSA", "TLS1.3", "Message-I", "Date: "} {
			if !strings.Contains(msg, h) {
				t.Errorf("delivered message lacks %q:\n%s", h, msg)
			}
		}
	})

	t.Run("swaks without STARTTLS gets no AUTH", func(t *testing.T) {
		out, err := exec.Command(swaks, "--server", s.sub, "--auth", "PLAIN",
			"--auth-user", user, "--auth-password", pass,
			"--from", user, "--to", user).CombinedOutput()
		if err == nil {
			t.Fatalf("swaks authenticated without TLS:\n%s", out)
		}
		if strings.Contains(string(out), "250-AUTH") || strings.Contains(string(out), "235 ") {
			t.Errorf("AUTH offered or accepted before STARTTLS:\n%s", out)
		}
	})

	t.Run("swaks implicit TLS AUTH LOGIN on 465", func(t *testing.T) {
		out, err := exec.Command(swaks, "--server", s.subs, "--tlsc", "--auth", "LOGIN",
			"--auth-user", user, "--auth-password", pass,
			"--from", user, "--to", user, "--header", "Subject: swaks-465-marker").CombinedOutput()
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		s.waitMaildir(user, "swaks-465-marker")
	})

	t.Run("curl ssl-reqd on 465", func(t *testing.T) {
		body := "From: " + user + "\r\nTo: " + user + "\r\nSubject: curl-465-marker\r\n\r\nfrom curl\r\n"
		cmd := exec.Command(curl, "-sS", "--ssl-reqd", "-k", "smtps://"+s.subs,
			"--mail-from", user, "--mail-rcpt", user, "--user", user+":"+pass, "--upload-file", "-")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		s.waitMaildir(user, "curl-465-marker", "from curl")
	})

	t.Run("curl ssl-reqd STARTTLS on 587", func(t *testing.T) {
		body := "From: " + user + "\r\nSubject: curl-587-marker\r\n\r\nfrom curl\r\n"
		cmd := exec.Command(curl, "-sS", "--ssl-reqd", "-k", "smtp://"+s.sub,
			"--mail-from", user, "--mail-rcpt", user, "--user", user+":"+pass, "--upload-file", "-")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		s.waitMaildir(user, "curl-587-marker")
	})

	t.Run("python smtplib STARTTLS PLAIN and LOGIN", func(t *testing.T) {
		script := `
import smtplib, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
user, pw = sys.argv[2], sys.argv[3]
ctx = ssl._create_unverified_context()
for mech in ("PLAIN", "LOGIN"):
    s = smtplib.SMTP(host, int(port), timeout=10)
    s.ehlo()
    assert "auth" not in s.esmtp_features, "AUTH offered before STARTTLS"
    code, _ = s.starttls(context=ctx)
    assert code == 220, code
    s.ehlo()
    assert mech in s.esmtp_features["auth"], s.esmtp_features
    s.user, s.password = user, pw
    code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower()))
    assert code == 235, code
    s.sendmail(user, [user], "From: %s\r\nSubject: smtplib-%s-marker\r\n\r\nbody\r\n" % (user, mech))
    s.quit()
try:
    s = smtplib.SMTP(host, int(port), timeout=10)
    s.starttls(context=ctx)
    s.login(user, "wrong-password")
    sys.exit("wrong password accepted")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
print("ok")
`
		out, err := exec.Command(python, "-c", script, s.sub, user, pass).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ok") {
			t.Fatalf("smtplib: %v\n%s", err, out)
		}
		s.waitMaildir(user, "smtplib-PLAIN-marker")
		s.waitMaildir(user, "smtplib-LOGIN-marker")
	})

	t.Run("mx takes local mail without AUTH and refuses relaying", func(t *testing.T) {
		out, err := exec.Command(swaks, "--server", s.mx, "--from", "someone@example.net",
			"--to", user, "--header", "Subject: mx-marker").CombinedOutput()
		if err != nil {
			t.Fatalf("swaks to mx: %v\n%s", err, out)
		}
		s.waitMaildir(user, "mx-marker", "with ESMTP")
		out, err = exec.Command(swaks, "--server", s.mx, "--from", "someone@example.net",
			"--to", "victim@example.com").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "550 5.7.1") {
			t.Fatalf("relay via mx not refused with 550 5.7.1: %v\n%s", err, out)
		}
		out, _ = exec.Command(swaks, "--server", s.mx, "--from", "someone@example.net",
			"--to", "nobody@localhost").CombinedOutput()
		if !strings.Contains(string(out), "550 5.1.1") {
			t.Fatalf("unknown local user not refused with 550 5.1.1:\n%s", out)
		}
	})

	t.Run("metrics count what happened", func(t *testing.T) {
		m := metricsPage(t, s.http)
		for _, re := range []string{
			`postern_messages_accepted_total\{listener="submission"\} [1-9]`,
			`postern_messages_accepted_total\{listener="submissions"\} [1-9]`,
			`postern_messages_accepted_total\{listener="mx"\} [1-9]`,
			`postern_auth_attempts_total\{listener="submission",mechanism="PLAIN",outcome="success"\} [1-9]`,
			`postern_auth_attempts_total\{listener="submission",mechanism="PLAIN",outcome="failure"\} [1-9]`,
			`postern_tls_handshakes_total\{listener="submissions",result="ok",version="1.3"\} [1-9]`,
			`postern_rejections_total\{listener="mx",reason="relay_denied"\} [1-9]`,
			`postern_local_deliveries_total\{outcome="delivered"\} [1-9]`,
			// Local mail goes to the Maildirs before the 250, not
			// through the spool (delivery.direct_local).
			`postern_direct_deliveries_total\{outcome="delivered"\} [1-9]`,
			`postern_spool_fsync_seconds_count [0-9]`,
		} {
			if !regexp.MustCompile(re).MatchString(m) {
				t.Errorf("metrics lack %s", re)
			}
		}
	})

	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM exit: %v\nstderr:\n%s", err, s.stderr.String())
	}
	// A second start keeps the user and does not print the password again.
	s.start()
	if strings.Contains(s.stdout.String(), pass) {
		t.Errorf("password printed again on the second start")
	}
	b2, _ := os.ReadFile(pwFile)
	if strings.TrimSpace(string(b2)) != pass {
		t.Errorf("initial password changed on restart")
	}
}
