# Evaluates SPF with Debian's pyspf against a DNS server given as
# HOST:PORT in argv[1]. Reads "IP SENDER HELO" lines on stdin and answers
# each with one line: the result. Used by interop_test.go.
import sys
import dns.resolver
import spf

host, port = sys.argv[1].rsplit(":", 1)
r = dns.resolver.Resolver(configure=False)
r.nameservers = [host]
r.port = int(port)
r.cache = None
dns.resolver.default_resolver = r

for line in sys.stdin:
    ip, sender, helo = line.split()
    res, _ = spf.check2(i=ip, s=sender, h=helo)
    print(res, flush=True)
