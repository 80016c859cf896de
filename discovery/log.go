package discovery

import (
	"context"
	"log/slog"
	"strings"
)

// logWriter routes memberlist's log.Logger output ("[LEVEL] memberlist: msg")
// to slog at debug level: memberlist logs every failed probe and refutation,
// which is routine in a cluster that loses members. Its own level is kept as
// an attribute.
type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	ctx := context.Background()
	if !w.l.Enabled(ctx, slog.LevelDebug) {
		return len(p), nil
	}
	msg := strings.TrimSpace(string(p))
	level := ""
	if strings.HasPrefix(msg, "[") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			level, msg = msg[1:i], strings.TrimSpace(msg[i+1:])
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	w.l.LogAttrs(ctx, slog.LevelDebug, msg,
		slog.String("component", "memberlist"), slog.String("memberlist_level", level))
	return len(p), nil
}
