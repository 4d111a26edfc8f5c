#!/usr/bin/python3
# The SMTP client of scripts/systemd-check and scripts/install-check.
#   client.py submit PORT PASSWORD SUBJECT   one message: 587 STARTTLS, 465 TLS; AUTH PLAIN
#   client.py loop SECONDS                   connect to 25 and 587 again and again, read
#                                            the greeting; exit 1 on any failure
#   client.py idle                           EHLO on 25, then print what the server says next
import smtplib, socket, ssl, sys, time

HOST, USER = "127.0.0.1", "alice@example.test"

def ctx():
    c = ssl.create_default_context()
    c.check_hostname, c.verify_mode = False, ssl.CERT_NONE  # self-signed
    return c

def submit(port, password, subject):
    if port == 465:
        s = smtplib.SMTP_SSL(HOST, port, context=ctx(), timeout=30)
    else:
        s = smtplib.SMTP(HOST, port, timeout=30)
        s.starttls(context=ctx())
    s.login(USER, password)
    msg = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%d@example.test>\r\n\r\n"
           "hello from systemd-check\r\n" % (USER, USER, subject, time.time_ns()))
    refused = s.sendmail(USER, [USER], msg)
    s.quit()
    if refused:
        sys.exit("refused: %r" % refused)
    print("submitted on %d: %s" % (port, subject))

def loop(seconds):
    end, ok, fail = time.monotonic() + seconds, 0, 0
    while time.monotonic() < end:
        for port in (25, 587):
            try:
                with socket.create_connection((HOST, port), timeout=60) as c:
                    g = c.makefile("rb").readline()
                    if not g.startswith(b"220"):
                        raise OSError("greeting %r" % g)
                    c.sendall(b"QUIT\r\n")
                ok += 1
            except OSError as e:
                fail += 1
                if fail <= 5:
                    print("port %d at %.3f: %s" % (port, time.time(), e), flush=True)
        time.sleep(0.02)
    print("connections: %d ok, %d failed" % (ok, fail), flush=True)
    sys.exit(1 if fail or not ok else 0)

def idle():
    c = socket.create_connection((HOST, 25), timeout=120)
    f = c.makefile("rb")
    f.readline()
    c.sendall(b"EHLO idle.example.test\r\n")
    while f.readline()[3:4] != b" ":
        pass
    print("idle session open", flush=True)
    print("server said: %r" % f.readline(), flush=True)

cmd = sys.argv[1]
if cmd == "submit":
    submit(int(sys.argv[2]), sys.argv[3], sys.argv[4])
elif cmd == "loop":
    loop(float(sys.argv[2]))
elif cmd == "idle":
    idle()
