package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
)

// defaultLookupBudget bounds the calls to profiles and catalog behind
// POST /sessions, within the request's own deadline.
const defaultLookupBudget = 2 * time.Second

// maxUpstreamBody bounds what playback reads from a dependency.
const maxUpstreamBody = 1 << 20

// titleInfo is the part of the catalog's answer playback uses.
type titleInfo struct {
	ID        int64   `json:"id"`
	Maturity  string  `json:"maturity"`
	DurationS float64 `json:"duration_s"`
}

// refusal is an answer POST /sessions gives instead of a session.
type refusal struct {
	status      int
	code, msg   string
	retryAfter  bool
	unavailable error // what failed, for the log; nil for the caller's mistakes
}

// access looks the profile and the title up at once and checks that the
// profile may watch the title. It returns the title, or why not. A title
// without a maturity rating is in no profile's list: refused.
func access(ctx context.Context, c *http.Client, budget time.Duration, id string, title int64) (titleInfo, *refusal) {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	type result struct {
		t   titleInfo
		err error
	}
	titleCh := make(chan result, 1)
	go func() {
		var t titleInfo
		err := client.GetJSON(ctx, c, "http://catalog/titles/"+strconv.FormatInt(title, 10), maxUpstreamBody, &t)
		titleCh <- result{t, err}
	}()
	rights, perr := profile.Lookup(ctx, c, id)
	tr := <-titleCh
	if errors.Is(perr, profile.ErrNotFound) {
		return titleInfo{}, &refusal{status: http.StatusNotFound, code: "not_found", msg: fmt.Sprintf("no profile %q", id)}
	}
	if rf := lookupFailed("profiles", fmt.Sprintf("no profile %q", id), perr); rf != nil {
		return titleInfo{}, rf
	}
	if rf := lookupFailed("catalog", fmt.Sprintf("no title %d", title), tr.err); rf != nil {
		return titleInfo{}, rf
	}
	// The profiles service says what the profile may watch: the rule is
	// its own.
	if !rights.Allows(tr.t.Maturity) {
		return titleInfo{}, &refusal{status: http.StatusForbidden, code: "not_allowed",
			msg: fmt.Sprintf("profile %s (%s) may not watch title %d (%s)", id, rights.Maturity, title, cmp.Or(tr.t.Maturity, "unrated"))}
	}
	return tr.t, nil
}

// lookupFailed turns a failed call to service into the answer to give:
// 404 (with notFound) if it said 404, else 503, 504 or 502.
func lookupFailed(service, notFound string, err error) *refusal {
	if err == nil {
		return nil
	}
	var se *client.StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusNotFound:
		return &refusal{status: http.StatusNotFound, code: "not_found", msg: notFound}
	case errors.As(err, &se) && (se.Code == http.StatusServiceUnavailable || se.Code == http.StatusTooManyRequests):
		return &refusal{status: http.StatusServiceUnavailable, code: "unavailable", msg: service + " is unavailable", retryAfter: true, unavailable: err}
	case errors.As(err, &se) && se.Code == http.StatusGatewayTimeout:
		return &refusal{status: http.StatusGatewayTimeout, code: "timeout", msg: service + " did not answer in time", unavailable: err}
	case errors.As(err, &se):
		return &refusal{status: http.StatusBadGateway, code: "bad_gateway", msg: fmt.Sprintf("%s failed (status %d)", service, se.Code), unavailable: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, client.ErrAttemptTimeout):
		return &refusal{status: http.StatusGatewayTimeout, code: "timeout", msg: service + " did not answer in time", unavailable: err}
	case errors.Is(err, client.ErrNoInstances), errors.Is(err, client.ErrBudgetExhausted),
		errors.Is(err, client.ErrThrottled), errors.Is(err, client.ErrBulkheadFull), errors.Is(err, context.Canceled):
		return &refusal{status: http.StatusServiceUnavailable, code: "unavailable", msg: service + " is unavailable", retryAfter: true, unavailable: err}
	}
	return &refusal{status: http.StatusBadGateway, code: "bad_gateway", msg: service + " could not be reached", unavailable: err}
}
