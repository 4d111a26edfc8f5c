package tlsconf

import (
	"crypto/x509"
	"fmt"
	"os"
)

// LoadPool reads the PEM certificates of file into a pool: the system
// roots plus them when withSystem (only them if the system has none),
// else them alone. key is the configuration key that names file; the
// errors name it, as the operator corrects it there: "KEY: open ..."
// or "KEY FILE: no PEM certificate".
func LoadPool(file, key string, withSystem bool) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	var pool *x509.CertPool
	if withSystem {
		pool, _ = x509.SystemCertPool()
	}
	if pool == nil {
		pool = x509.NewCertPool() // no system roots here: the file's only
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate", key, file)
	}
	return pool, nil
}
