# Verifies every DKIM signature of each message file named in argv[2:]
# with dkimpy, asking the DNS server HOST:PORT in argv[1]; prints one line
# per message: "ok" or "fail" for each signature, space-separated.
import sys
import dns.resolver
import dkim

host, port = sys.argv[1].rsplit(":", 1)
r = dns.resolver.Resolver(configure=False)
r.nameservers = [host]
r.port = int(port)
dns.resolver.default_resolver = r

def verify(d, i):
    try:
        return "ok" if d.verify(idx=i) else "fail"
    except dkim.DKIMException:
        return "fail"


for path in sys.argv[2:]:
    msg = open(path, "rb").read()
    d = dkim.DKIM(msg)
    n = sum(1 for k, v in d.headers if k.lower() == b"dkim-signature")
    print(" ".join(verify(d, i) for i in range(n)), flush=True)
