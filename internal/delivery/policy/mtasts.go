package policy

import (
	"container/list"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"
	"time"

	"postern/internal/dns"
)

// maxSTSBody is the largest policy file accepted (RFC 8461 §3.3 lets
// senders limit it; 64 KiB is what the RFC suggests).
const maxSTSBody = 64 << 10

// fetchRetry is how long a failed fetch of one policy id is not repeated;
// meanwhile the cached policy, if any, stays in force (RFC 8461 §5.1).
const fetchRetry = 5 * time.Minute

// cachedSTS is one domain's MTA-STS state.
type cachedSTS struct {
	domain  string
	id      string     // id of the TXT record the policy was fetched for
	policy  *STSPolicy // nil when no policy was ever fetched
	expires time.Time

	failedID string    // id whose fetch failed last
	retryAt  time.Time // do not fetch failedID again before this
}

// stsFlight is one fetch in progress, shared by concurrent Plans.
type stsFlight struct {
	done   chan struct{}
	policy *STSPolicy
	err    error
}

// stsCache holds MTA-STS policies per domain, least recently used first
// out when full.
type stsCache struct {
	mu       sync.Mutex
	size     int
	lru      *list.List // of *cachedSTS, most recent at the front
	byDomain map[string]*list.Element
	inflight map[string]*stsFlight // by domain + " " + id
}

func newSTSCache(size int) *stsCache {
	return &stsCache{
		size:     size,
		lru:      list.New(),
		byDomain: make(map[string]*list.Element),
		inflight: make(map[string]*stsFlight),
	}
}

// get returns a copy of the domain's entry, if any.
func (c *stsCache) get(domain string) (cachedSTS, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byDomain[domain]
	if !ok {
		return cachedSTS{}, false
	}
	c.lru.MoveToFront(el)
	return *el.Value.(*cachedSTS), true
}

// update changes the domain's entry with f, creating it if needed.
func (c *stsCache) update(domain string, f func(e *cachedSTS)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byDomain[domain]
	if !ok {
		el = c.lru.PushFront(&cachedSTS{domain: domain})
		c.byDomain[domain] = el
		for c.lru.Len() > c.size {
			old := c.lru.Back()
			c.lru.Remove(old)
			delete(c.byDomain, old.Value.(*cachedSTS).domain)
		}
	} else {
		c.lru.MoveToFront(el)
	}
	f(el.Value.(*cachedSTS))
}

// activeSTS is the MTA-STS policy that applies to one Plan.
type activeSTS struct {
	id     string
	policy *STSPolicy
}

// mtasts returns the MTA-STS policy in force for domain, or nil. It never
// fails: every error means "no new policy", and the cached one, while
// unexpired, stays in force (RFC 8461 §5.1).
func (e *Engine) mtasts(ctx context.Context, domain string) *activeSTS {
	now := e.now()
	cached, ok := e.sts.get(domain)
	var current *activeSTS
	if ok && cached.policy != nil && now.Before(cached.expires) {
		current = &activeSTS{id: cached.id, policy: cached.policy}
	}

	// RFC 8461 §3.1: the TXT record at _mta-sts.DOMAIN says whether a
	// policy exists and its id.
	txts, _, err := e.opts.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		if !dns.IsNotFound(err) {
			e.log.Warn("MTA-STS TXT lookup failed", "domain", domain, "err", err, "cached", current != nil)
		}
		// RFC 8461 §3.1: a missing record does not remove a cached policy.
		return current
	}
	id, err := ParseSTSRecord(txts)
	if err != nil {
		e.log.Info("MTA-STS TXT record unusable", "domain", domain, "err", err, "cached", current != nil)
		return current
	}
	if current != nil && current.id == id {
		return current
	}
	if ok && cached.failedID == id && now.Before(cached.retryAt) {
		return current
	}

	pol, err := e.fetchShared(ctx, domain, id, now)
	if err != nil {
		e.log.Warn("MTA-STS policy fetch failed", "domain", domain, "id", id, "err", err, "cached", current != nil)
		return current
	}
	return &activeSTS{id: id, policy: pol}
}

// fetchShared fetches the policy once for all concurrent callers asking
// for the same domain and id, and records the outcome in the cache: the
// new policy until now plus its max_age, or the failure, so that the id
// is not fetched again before fetchRetry.
func (e *Engine) fetchShared(ctx context.Context, domain, id string, now time.Time) (*STSPolicy, error) {
	key := domain + " " + id
	c := e.sts
	c.mu.Lock()
	if el, ok := c.byDomain[domain]; ok {
		// Another Plan may have fetched it since mtasts looked.
		if cur := el.Value.(*cachedSTS); cur.policy != nil && cur.id == id && now.Before(cur.expires) {
			c.mu.Unlock()
			return cur.policy, nil
		}
	}
	if f, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.policy, f.err
		case <-ctx.Done():
			return nil, fmt.Errorf("policy: MTA-STS fetch for %s: %w", domain, ctx.Err())
		}
	}
	f := &stsFlight{done: make(chan struct{})}
	c.inflight[key] = f
	c.mu.Unlock()

	f.policy, f.err = e.fetch(ctx, domain)

	switch {
	case f.err == nil:
		e.opts.Metrics.STSFetches.WithLabelValues("ok").Inc()
		e.log.Info("MTA-STS policy fetched", "domain", domain, "id", id, "mode", string(f.policy.Mode), "max_age", f.policy.MaxAge)
		c.update(domain, func(ent *cachedSTS) {
			ent.id, ent.policy, ent.expires = id, f.policy, now.Add(f.policy.MaxAge)
			ent.failedID, ent.retryAt = "", time.Time{}
		})
	case ctx.Err() == nil:
		e.opts.Metrics.STSFetches.WithLabelValues("error").Inc()
		c.update(domain, func(ent *cachedSTS) {
			ent.failedID, ent.retryAt = id, now.Add(fetchRetry)
		})
	}
	c.mu.Lock()
	delete(c.inflight, key)
	c.mu.Unlock()
	close(f.done)
	return f.policy, f.err
}

// fetch gets and parses the policy of domain (FetchSTSPolicy), within
// Options.FetchTimeout.
func (e *Engine) fetch(ctx context.Context, domain string) (*STSPolicy, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.FetchTimeout)
	defer cancel()
	return FetchSTSPolicy(ctx, e.http, domain)
}

// FetchSTSPolicy gets and parses (ParseSTSPolicy) the MTA-STS policy of
// domain, https://mta-sts.DOMAIN/.well-known/mta-sts.txt. RFC 8461
// §3.3: HTTPS with a certificate valid for mta-sts.DOMAIN (client's
// transport checks it), no redirects (FetchSTSPolicy follows none,
// whatever client's CheckRedirect), status 200, media type text/plain;
// the body is limited to 64 KiB. Delivery and `postern check` fetch
// with it.
func FetchSTSPolicy(ctx context.Context, client *http.Client, domain string) (*STSPolicy, error) {
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("policy: MTA-STS fetch %s: %w", url, err)
	}
	c := *client
	c.CheckRedirect = noRedirect
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("policy: MTA-STS fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Redirects end up here too: the client does not follow them.
		return nil, fmt.Errorf("policy: MTA-STS fetch %s: HTTP status %s (redirects are not followed)", url, resp.Status)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("policy: MTA-STS fetch %s: media type %q, want text/plain", url, truncate(resp.Header.Get("Content-Type")))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSTSBody+1))
	if err != nil {
		return nil, fmt.Errorf("policy: MTA-STS fetch %s: read body: %w", url, err)
	}
	if len(body) > maxSTSBody {
		return nil, fmt.Errorf("policy: MTA-STS fetch %s: policy larger than %d bytes", url, maxSTSBody)
	}
	pol, err := ParseSTSPolicy(string(body))
	if err != nil {
		return nil, fmt.Errorf("policy: MTA-STS fetch %s: %w", url, err)
	}
	return pol, nil
}

// noRedirect makes an http.Client return a redirect response as it is
// (RFC 8461 §3.3: senders must not follow redirects).
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
