package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// edge is what a user's device sees of flix: the gateway instances behind
// one name. Like a load balancer or DNS in front of them, it sends each
// request to the next gateway and moves on to another one when a gateway
// cannot be reached or is going away, for requests that are safe to repeat
// (reads, and writes that carry an Idempotency-Key).
type edge struct {
	gateways []string // base URLs
	c        *http.Client
	next     atomic.Uint64
	retries  atomic.Int64 // requests sent again to another gateway
}

func newEdge(gateways ...string) *edge {
	return &edge{gateways: gateways, c: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
}

// request is one request to flix.
type request struct {
	method, path string
	token        string // JWT: Authorization: Bearer
	apiKey       string // Authorization: ApiKey
	key          string // Idempotency-Key
	body         any
	retry        bool // safe to send again (reads, keyed writes, sign-in)
}

// answer is what flix said.
type answer struct {
	status int
	body   []byte
}

func (a answer) decode(v any) error {
	if err := json.Unmarshal(a.body, v); err != nil {
		return fmt.Errorf("status %d, body %q: %w", a.status, a.body, err)
	}
	return nil
}

// do sends c within deadline. A retryable call goes to the next gateway
// after a connection error or a 502/503 from a gateway that is stopping,
// until the deadline.
func (e *edge) do(c request, deadline time.Duration) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var payload []byte
	if c.body != nil {
		payload, _ = json.Marshal(c.body)
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		base := e.gateways[e.next.Add(1)%uint64(len(e.gateways))]
		req, _ := http.NewRequestWithContext(ctx, c.method, base+c.path, bytes.NewReader(payload))
		if c.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		if c.apiKey != "" {
			req.Header.Set("Authorization", "ApiKey "+c.apiKey)
		}
		if c.key != "" {
			req.Header.Set("Idempotency-Key", c.key)
		}
		resp, err := e.c.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			a := answer{status: resp.StatusCode, body: b}
			if rerr == nil && !(c.retry && resp.StatusCode == http.StatusServiceUnavailable) {
				return a, nil
			}
			lastErr = fmt.Errorf("%s %s: status %d, %q, %v", c.method, c.path, resp.StatusCode, bytes.TrimSpace(b), rerr)
		} else {
			lastErr = err
		}
		if !c.retry || ctx.Err() != nil {
			return answer{}, lastErr
		}
		e.retries.Add(1)
		select {
		case <-ctx.Done():
			return answer{}, errors.Join(lastErr, ctx.Err())
		case <-time.After(time.Duration(min(attempt+1, 5)) * 20 * time.Millisecond):
		}
	}
}

// newKey returns a fresh Idempotency-Key.
func newKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// profileOf returns the dataset's sign-in for profile n (1..500): account
// k owns profiles 2k-1 and 2k, and every account's password is "flix".
func profileOf(n int) (email, profile string) {
	return fmt.Sprintf("user%d@flix.example", (n+1)/2), fmt.Sprintf("p%04d", n)
}

// signIn returns a JWT for profile n.
func (e *edge) signIn(n int, deadline time.Duration) (string, error) {
	email, profile := profileOf(n)
	a, err := e.do(request{method: "POST", path: "/signin", retry: true,
		body: map[string]string{"email": email, "password": "flix", "profile": profile}}, deadline)
	if err != nil {
		return "", err
	}
	var out struct{ Token string }
	if err := a.decode(&out); err != nil || a.status != 200 || out.Token == "" {
		return "", fmt.Errorf("sign-in of %s: status %d, %s (%v)", profile, a.status, a.body, err)
	}
	return out.Token, nil
}
