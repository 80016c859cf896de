// Package flixedge drives the flix reference system from outside, the way
// a user's device would: through its gateways only. The end-to-end tests use
// it directly and through the journeys command, which runs journeys from a
// process without the race detector (see e2e/journeys).
package flixedge

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

// Edge is what a user's device sees of flix: the gateway instances behind
// one name. Like a load balancer or DNS in front of them, it sends each
// request to the next gateway and moves on to another one when a gateway
// cannot be reached or is going away, for requests that are safe to repeat
// (reads, and writes that carry an Idempotency-Key).
type Edge struct {
	gateways []string // base URLs
	c        *http.Client
	next     atomic.Uint64
	Retries  atomic.Int64 // requests sent again to another gateway
}

func New(gateways ...string) *Edge {
	return &Edge{gateways: gateways, c: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
}

// Request is one request to flix.
type Request struct {
	Method, Path string
	Token        string // JWT: Authorization: Bearer
	APIKey       string // Authorization: ApiKey
	Key          string // Idempotency-Key
	Body         any
	Retry        bool // safe to send again (reads, keyed writes, sign-in)
}

// Answer is what flix said.
type Answer struct {
	Status int
	Body   []byte
}

// Decode unmarshals the body into v.
func (a Answer) Decode(v any) error {
	if err := json.Unmarshal(a.Body, v); err != nil {
		return fmt.Errorf("status %d, body %q: %w", a.Status, a.Body, err)
	}
	return nil
}

// Do sends c within deadline. A retryable call goes to the next gateway
// after a connection error or a 502/503 from a gateway that is stopping,
// until the deadline.
func (e *Edge) Do(c Request, deadline time.Duration) (Answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var payload []byte
	if c.Body != nil {
		payload, _ = json.Marshal(c.Body)
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		base := e.gateways[e.next.Add(1)%uint64(len(e.gateways))]
		req, _ := http.NewRequestWithContext(ctx, c.Method, base+c.Path, bytes.NewReader(payload))
		if c.Body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		if c.APIKey != "" {
			req.Header.Set("Authorization", "ApiKey "+c.APIKey)
		}
		if c.Key != "" {
			req.Header.Set("Idempotency-Key", c.Key)
		}
		resp, err := e.c.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			a := Answer{Status: resp.StatusCode, Body: b}
			if rerr == nil && !(c.Retry && resp.StatusCode == http.StatusServiceUnavailable) {
				return a, nil
			}
			lastErr = fmt.Errorf("%s %s: status %d, %q, %v", c.Method, c.Path, resp.StatusCode, bytes.TrimSpace(b), rerr)
		} else {
			lastErr = err
		}
		if !c.Retry || ctx.Err() != nil {
			return Answer{}, lastErr
		}
		e.Retries.Add(1)
		select {
		case <-ctx.Done():
			return Answer{}, errors.Join(lastErr, ctx.Err())
		case <-time.After(time.Duration(min(attempt+1, 5)) * 20 * time.Millisecond):
		}
	}
}

// NewKey returns a fresh Idempotency-Key.
func NewKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ProfileOf returns the dataset's sign-in for profile n (1..500): account
// k owns profiles 2k-1 and 2k, and every account's password is "flix".
func ProfileOf(n int) (email, profile string) {
	return fmt.Sprintf("user%d@flix.example", (n+1)/2), fmt.Sprintf("p%04d", n)
}

// SignIn returns a JWT for profile n.
func (e *Edge) SignIn(n int, deadline time.Duration) (string, error) {
	email, profile := ProfileOf(n)
	a, err := e.Do(Request{Method: "POST", Path: "/signin", Retry: true,
		Body: map[string]string{"email": email, "password": "flix", "profile": profile}}, deadline)
	if err != nil {
		return "", err
	}
	var out struct{ Token string }
	if err := a.Decode(&out); err != nil || a.Status != 200 || out.Token == "" {
		return "", fmt.Errorf("sign-in of %s: status %d, %s (%v)", profile, a.Status, a.Body, err)
	}
	return out.Token, nil
}
