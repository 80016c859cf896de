package gateway

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/shoal-dev/shoal/client"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{client.ErrNoInstances, http.StatusServiceUnavailable, "unavailable"},
		{client.ErrBudgetExhausted, http.StatusServiceUnavailable, "unavailable"},
		// Load shed by the client is a refusal to retry later, not a bad upstream.
		{fmt.Errorf("call: %w", client.ErrBulkheadFull), http.StatusServiceUnavailable, "unavailable"},
		{client.ErrThrottled, http.StatusServiceUnavailable, "unavailable"},
		{context.DeadlineExceeded, http.StatusGatewayTimeout, "timeout"},
		{client.ErrAttemptTimeout, http.StatusGatewayTimeout, "timeout"},
		{fmt.Errorf("connection refused"), http.StatusBadGateway, "bad_gateway"},
	} {
		code, status, _ := classify("catalog", c.err)
		if status != c.status || code != c.code {
			t.Errorf("classify(%v) = %d %s, want %d %s", c.err, status, code, c.status, c.code)
		}
	}
}
