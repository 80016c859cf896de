// Package loglevel chooses the level of the log line about a request that
// failed, by whether its caller is still waiting for the answer.
package loglevel

import (
	"context"
	"errors"
	"log/slog"
)

// Failure is the level for a failure while serving a request whose context
// is ctx: debug if the caller left (a hedge that lost, a client that hung
// up: nobody reads the answer, nothing is wrong), warn if its deadline
// passed (slow, not broken), error otherwise.
func Failure(ctx context.Context) slog.Level {
	switch err := ctx.Err(); {
	case errors.Is(err, context.Canceled):
		return slog.LevelDebug
	case err != nil:
		return slog.LevelWarn
	}
	return slog.LevelError
}
