package supervisor

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// LogLines is how many recent lines are kept per service/index for logs
// (shoal logs).
const LogLines = 1000

// maxLine bounds one log line: a program that writes without newlines is cut
// into lines of this size rather than buffered without limit.
const maxLine = 64 << 10

// logLine is one line an instance wrote, numbered in arrival order across
// the whole system so lines from several instances can be merged.
type logLine struct {
	seq     uint64
	service string
	index   int
	text    string
}

// ring keeps the last LogLines lines of one service/index.
type ring struct {
	lines []logLine // at most LogLines, oldest first after wrap handling
	next  int       // where the next line goes once full
}

func (r *ring) add(l logLine) {
	if len(r.lines) < LogLines {
		r.lines = append(r.lines, l)
		return
	}
	r.lines[r.next] = l
	r.next = (r.next + 1) % LogLines
}

// after appends to dst the lines with seq > after, oldest first.
func (r *ring) after(dst []logLine, after uint64) []logLine {
	n := len(r.lines)
	for i := range n {
		l := r.lines[(r.next+i)%n]
		if l.seq > after {
			dst = append(dst, l)
		}
	}
	return dst
}

type logKey struct {
	service string
	index   int
}

// logHub stores every instance's recent lines and tells followers when more
// arrive. All methods are safe for concurrent use and never block on a
// reader: a follower that falls more than LogLines lines behind skips lines.
type logHub struct {
	mu      sync.Mutex
	seq     uint64
	rings   map[logKey]*ring
	changed chan struct{} // closed and replaced on every new line
}

func newLogHub() *logHub {
	return &logHub{rings: map[logKey]*ring{}, changed: make(chan struct{})}
}

func (h *logHub) add(service string, index int, text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	k := logKey{service, index}
	r := h.rings[k]
	if r == nil {
		r = &ring{}
		h.rings[k] = r
	}
	r.add(logLine{seq: h.seq, service: service, index: index, text: text})
	close(h.changed)
	h.changed = make(chan struct{})
}

// has reports whether instance index of service has written a line.
func (h *logHub) has(service string, index int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rings[logKey{service, index}] != nil
}

// LogFilter selects log lines: of a service ("" for all), of one of its
// instances (Index from 1; -1 for all), and carrying a trace ID ("" for
// any). A line carries a trace when it is a JSON object whose trace_id
// field is the ID (what the SDK's slog handler writes), or, for programs
// that log otherwise, when it contains the ID: 32 hex digits do not occur
// by chance.
type LogFilter struct {
	Service string
	Index   int
	TraceID string
}

// AllLogs selects every line.
var AllLogs = LogFilter{Index: -1}

func (f LogFilter) match(l *logLine) bool {
	return (f.Service == "" || l.service == f.Service) && (f.Index < 0 || l.index == f.Index) &&
		(f.TraceID == "" || hasTrace(l.text, f.TraceID))
}

func hasTrace(text, id string) bool {
	if !strings.Contains(text, id) {
		return false
	}
	if !strings.HasPrefix(text, "{") {
		return true
	}
	var fields struct {
		TraceID *string `json:"trace_id"`
	}
	if json.Unmarshal([]byte(text), &fields) != nil || fields.TraceID == nil {
		return true // not JSON after all, or the ID in another field
	}
	return strings.EqualFold(*fields.TraceID, id)
}

// since returns the stored lines of service ("" = all) and index (-1 =
// every index) with seq > after, in arrival order, the highest seq seen,
// and a channel closed when more lines arrive.
func (h *logHub) since(service string, index int, after uint64) ([]logLine, uint64, <-chan struct{}) {
	return h.matching(LogFilter{Service: service, Index: index}, after)
}

// matching is since for any filter.
func (h *logHub) matching(f LogFilter, after uint64) ([]logLine, uint64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logLine
	for k, r := range h.rings {
		if (f.Service == "" || k.service == f.Service) && (f.Index < 0 || k.index == f.Index) {
			out = r.after(out, after)
		}
	}
	if f.TraceID != "" {
		out = slices.DeleteFunc(out, func(l logLine) bool { return !f.match(&l) })
	}
	slices.SortFunc(out, func(a, b logLine) int { return cmp.Compare(a.seq, b.seq) })
	return out, h.seq, h.changed
}

// follow writes matching lines to w as "service/index | text", then, when
// follow is set, new ones until ctx ends. flush is called after each batch.
func (h *logHub) follow(ctx context.Context, f LogFilter, follow bool, w io.Writer, flush func()) error {
	var last uint64
	for {
		lines, seq, changed := h.matching(f, last)
		last = seq
		var b bytes.Buffer
		for _, l := range lines {
			fmt.Fprintf(&b, "%s/%d | %s\n", l.service, l.index, l.text)
		}
		if b.Len() > 0 {
			if _, err := w.Write(b.Bytes()); err != nil {
				return err
			}
			flush()
		}
		if !follow {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// lineWriter splits one process's output (stdout and stderr share it, so
// exec copies both with one goroutine and Write is never concurrent) into
// lines for the hub and the supervisor's Out.
type lineWriter struct {
	emit func(text string)
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		switch {
		case i >= 0 && i <= maxLine:
			w.emit(string(bytes.TrimRight(w.buf[:i], "\r")))
			w.buf = w.buf[i+1:]
		case len(w.buf) >= maxLine:
			w.emit(string(w.buf[:maxLine]))
			w.buf = w.buf[maxLine:]
		default:
			if len(w.buf) == 0 {
				w.buf = nil // let a large burst's array go
			}
			return len(p), nil
		}
	}
}

// flush emits a last line without a newline; call it after the process's
// Wait returned (no more Writes).
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}

// prefixColors are ANSI colours given to services in manifest order.
var prefixColors = []int{36, 33, 32, 35, 34, 91, 96, 93, 92, 95}

// consoleQueue bounds the bytes waiting for Options.Out: when the reader of
// shoal up's output stalls (a pager, Ctrl-S), lines beyond it are dropped
// and counted rather than blocking instances' output copiers and the
// supervisor's restart and health loops.
const consoleQueue = 1 << 20

// consoleFlush bounds how long Run waits at the end for queued output.
const consoleFlush = time.Second

// console queues writes to Options.Out for one writer goroutine (run). line
// and printf never block on Out; they are safe for concurrent use.
type console struct {
	out   io.Writer
	color bool
	width int // of the widest "service/index" prefix
	limit int // queued bytes beyond which text is dropped

	mu      sync.Mutex
	queue   []string      // waiting for out, oldest first
	queued  int           // bytes in queue
	dropped int           // writes dropped since the last report
	wake    chan struct{} // size 1: something was queued
}

func newConsole(out io.Writer, color bool, width int) *console {
	return &console{out: out, color: color, width: width, limit: consoleQueue, wake: make(chan struct{}, 1)}
}

// line queues one prefixed line; colorIdx < 0 means the supervisor itself.
func (c *console) line(prefix string, colorIdx int, text string) {
	c.enqueue(c.format(prefix, colorIdx, text))
}

func (c *console) format(prefix string, colorIdx int, text string) string {
	p := fmt.Sprintf("%-*s |", c.width, prefix)
	if c.color {
		code := 1 // bold for the supervisor's own lines
		if colorIdx >= 0 {
			code = prefixColors[colorIdx%len(prefixColors)]
		}
		p = fmt.Sprintf("\x1b[%dm%s\x1b[0m", code, p)
	}
	return p + " " + text + "\n"
}

// printf queues unprefixed text (progress, the status table).
func (c *console) printf(format string, args ...any) {
	c.enqueue(fmt.Sprintf(format, args...))
}

func (c *console) enqueue(s string) {
	c.mu.Lock()
	if c.queued > 0 && c.queued+len(s) > c.limit {
		c.dropped++
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, s)
	c.queued += len(s)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// take returns what is queued, as one string, and clears the queue.
func (c *console) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	b.Grow(c.queued)
	for _, s := range c.queue {
		b.WriteString(s)
	}
	if c.dropped > 0 {
		// Reported once the writer caught up with what was queued before.
		b.WriteString(c.format("shoal", -1, fmt.Sprintf("(%d lines dropped: the output was not read fast enough)", c.dropped)))
		c.dropped = 0
	}
	clear(c.queue)
	c.queue, c.queued = c.queue[:0], 0
	return b.String()
}

// run writes queued text to out until stop is closed and the queue is
// empty. It is Run's goroutine; a Write that blocks holds it up, never the
// callers of line and printf.
func (c *console) run(stop <-chan struct{}) {
	stopping := false
	for {
		if s := c.take(); s != "" {
			_, _ = io.WriteString(c.out, s)
			continue
		}
		if stopping {
			return
		}
		select {
		case <-c.wake:
		case <-stop:
			stopping = true // one more pass for what was queued meanwhile
		}
	}
}
