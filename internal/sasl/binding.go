package sasl

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"maps"
	"slices"
)

// Channel binding types SCRAM-*-PLUS accepts (RFC 5056 names).
const (
	// CBTLSExporter is RFC 9266's tls-exporter: 32 octets of keying
	// material exported with the label "EXPORTER-Channel-Binding".
	CBTLSExporter = "tls-exporter"
	// CBTLSServerEndPoint is RFC 5929 §4's tls-server-end-point: a hash of
	// the server's certificate.
	CBTLSServerEndPoint = "tls-server-end-point"
)

// ChannelBindings returns the channel bindings of a TLS session in state
// cs, by type: tls-exporter on TLS 1.3 (RFC 9266 §2; on TLS 1.2 it is safe
// only with Extended Master Secret, which the state does not show, so it is
// not offered there), and tls-server-end-point whenever cert, the leaf
// certificate the server sent in this session, is given and its signature
// algorithm names a hash (RFC 5929 §4.1). It returns nil when there is no
// usable binding (cs nil, handshake not complete).
func ChannelBindings(cs *tls.ConnectionState, cert *x509.Certificate) map[string][]byte {
	if cs == nil || !cs.HandshakeComplete {
		return nil
	}
	out := make(map[string][]byte, 2)
	if cs.Version >= tls.VersionTLS13 {
		if b := exporter(cs); b != nil {
			out[CBTLSExporter] = b
		}
	}
	if b := serverEndPoint(cert); b != nil {
		out[CBTLSServerEndPoint] = b
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// exporter returns the tls-exporter binding (RFC 9266 §2), or nil. A
// ConnectionState not made by crypto/tls (as in tests) has no exporter and
// makes ExportKeyingMaterial panic: that too gives nil.
func exporter(cs *tls.ConnectionState) (b []byte) {
	defer func() {
		if recover() != nil {
			b = nil
		}
	}()
	b, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		return nil
	}
	return b
}

// serverEndPoint hashes cert for tls-server-end-point (RFC 5929 §4.1): with
// SHA-256 when its signature uses MD5 or SHA-1, otherwise with the hash of
// its signature. Signatures without a separate hash (Ed25519) have no
// defined binding: nil.
func serverEndPoint(cert *x509.Certificate) []byte {
	if cert == nil {
		return nil
	}
	var h crypto.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.ECDSAWithSHA256, x509.DSAWithSHA256:
		h = crypto.SHA256
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = crypto.SHA384
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = crypto.SHA512
	default:
		return nil
	}
	d := h.New()
	d.Write(cert.Raw)
	return d.Sum(nil)
}

// bindingTypes lists the types in b, sorted.
func bindingTypes(b map[string][]byte) []string {
	return slices.Sorted(maps.Keys(b))
}
