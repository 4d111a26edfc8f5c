# Signs the message on stdin with dkimpy (Debian's python3-dkim), once per
# job, and writes the signed messages to stdout, each followed by a NUL.
# argv: DOMAIN, then jobs "SELECTOR,ALGORITHM,KEYFILE,HEADER_CANON,BODY_CANON".
# KEYFILE holds a PKCS #1 PEM key for rsa-sha256, the base64 32-byte
# seed for ed25519-sha256 (RFC 8463).
import sys
import dkim

domain = sys.argv[1].encode()
msg = sys.stdin.buffer.read()
for job in sys.argv[2:]:
    selector, alg, keyfile, hcanon, bcanon = job.split(",")
    key = open(keyfile, "rb").read()
    sig = dkim.sign(msg, selector.encode(), domain, key,
                    canonicalize=(hcanon.encode(), bcanon.encode()),
                    signature_algorithm=alg.encode(),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    sys.stdout.buffer.write(sig + msg + b"\0")
