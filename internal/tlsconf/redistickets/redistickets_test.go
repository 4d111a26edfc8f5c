package redistickets

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"postern/internal/testkit"
	"postern/internal/tlsconf"
)

// testClient returns a client of the Redis server of the tests
// (POSTERN_TEST_REDIS) and a key of the test's own, deleted at the end.
// Without it the test skips, unless POSTERN_INTEGRATION=1: then it fails.
func testClient(t *testing.T) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testkit.RedisAddr(t), Protocol: 2, DisableIdentity: true})
	key := fmt.Sprintf("postern-test:%d:%s:ticket-keys", os.Getpid(), t.Name())
	t.Cleanup(func() {
		rdb.Del(context.Background(), key)
		rdb.Close()
	})
	return rdb, key
}

var now = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func TestRotate(t *testing.T) {
	t.Parallel()
	rdb, key := testClient(t)
	s := &Store{Client: rdb, Key: key}
	ctx := context.Background()
	k1, err := s.Rotate(ctx, now, time.Hour, 2)
	if err != nil || len(k1) != 1 || !k1[0].Created.Equal(now) {
		t.Fatalf("first: %v %v", k1, err)
	}
	k2, _ := s.Rotate(ctx, now.Add(59*time.Minute), time.Hour, 2)
	if len(k2) != 1 || k2[0] != k1[0] {
		t.Fatal("rotated early")
	}
	k3, _ := s.Rotate(ctx, now.Add(time.Hour), time.Hour, 2)
	if len(k3) != 2 || k3[1] != k1[0] || k3[0].Key == k1[0].Key {
		t.Fatalf("rotation: %v", k3)
	}
	k4, _ := s.Rotate(ctx, now.Add(2*time.Hour), time.Hour, 2)
	if len(k4) != 2 || k4[1] != k3[0] {
		t.Fatal("keep")
	}
}

// TestConcurrentNodes: many nodes rotating at once add one key.
func TestConcurrentNodes(t *testing.T) {
	t.Parallel()
	rdb, key := testClient(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([][]tlsconf.TicketKey, 16)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			results[i], err = (&Store{Client: rdb, Key: key}).Rotate(ctx, now, time.Hour, 3)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, r := range results {
		if len(r) != 1 || r[0] != results[0][0] {
			t.Fatalf("nodes disagree: %v", results)
		}
	}
}

// TestSharedResumption: a ticket from node A resumes on node B.
func TestSharedResumption(t *testing.T) {
	t.Parallel()
	rdb, key := testClient(t)
	ctx := context.Background()
	dir := t.TempDir()
	cf, kf, err := tlsconf.EnsureSelfSigned(dir, []string{"localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certs, err := tlsconf.LoadCerts(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	node := func() *tls.Config {
		c := tlsconf.ServerConfig(certs, tlsconf.Policy{})
		if err := tlsconf.NewTickets(tlsconf.TicketOptions{Store: &Store{Client: rdb, Key: key}, Rotation: 12 * time.Hour}).Add(ctx, c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := node(), node()
	roots := tlsconfRoots(t, certs)
	cli := &tls.Config{RootCAs: roots, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(2)}
	if handshake(t, a, cli) {
		t.Fatal("first resumed")
	}
	if !handshake(t, b, cli) {
		t.Fatal("a ticket from node A did not resume on node B")
	}
}
