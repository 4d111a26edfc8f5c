package testkit

import (
	"os"
	"testing"
)

// Service returns the value of the environment variable env, which names
// a service the test needs (scripts/test starts it and sets the
// variable). Without it the test skips, unless POSTERN_INTEGRATION=1
// asks that everything run: then it fails.
func Service(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if os.Getenv("POSTERN_INTEGRATION") == "1" {
			t.Fatalf("%s is not set (scripts/test starts the service and sets it)", env)
		}
		t.Skipf("%s is not set: no service to test against", env)
	}
	return v
}

// RedisAddr returns host:port of the Redis server of the tests
// (POSTERN_TEST_REDIS), as Service.
func RedisAddr(t testing.TB) string {
	t.Helper()
	return Service(t, "POSTERN_TEST_REDIS")
}
