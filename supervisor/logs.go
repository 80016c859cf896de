package supervisor

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
)

// ringSize is how many recent lines are kept per service/index for logs.
const ringSize = 1000

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

// ring keeps the last ringSize lines of one service/index.
type ring struct {
	lines []logLine // at most ringSize, oldest first after wrap handling
	next  int       // where the next line goes once full
}

func (r *ring) add(l logLine) {
	if len(r.lines) < ringSize {
		r.lines = append(r.lines, l)
		return
	}
	r.lines[r.next] = l
	r.next = (r.next + 1) % ringSize
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
// reader: a follower that falls more than ringSize lines behind skips lines.
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

// since returns the stored lines matching the filter (service "" = all,
// index -1 = every index) with seq > after, in arrival order, the highest
// seq seen, and a channel closed when more lines arrive.
func (h *logHub) since(service string, index int, after uint64) ([]logLine, uint64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logLine
	for k, r := range h.rings {
		if (service == "" || k.service == service) && (index < 0 || k.index == index) {
			out = r.after(out, after)
		}
	}
	slices.SortFunc(out, func(a, b logLine) int { return cmp.Compare(a.seq, b.seq) })
	return out, h.seq, h.changed
}

// follow writes matching lines to w as "service/index | text", then, when
// follow is set, new ones until ctx ends. flush is called after each batch.
func (h *logHub) follow(ctx context.Context, service string, index int, follow bool, w io.Writer, flush func()) error {
	var last uint64
	for {
		lines, seq, changed := h.since(service, index, last)
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

// console serializes writes to Options.Out.
type console struct {
	mu    sync.Mutex
	out   io.Writer
	color bool
	width int // of the widest "service/index" prefix
}

// line writes one prefixed line; colorIdx < 0 means the supervisor itself.
func (c *console) line(prefix string, colorIdx int, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := fmt.Sprintf("%-*s |", c.width, prefix)
	if c.color {
		code := 1 // bold for the supervisor's own lines
		if colorIdx >= 0 {
			code = prefixColors[colorIdx%len(prefixColors)]
		}
		p = fmt.Sprintf("\x1b[%dm%s\x1b[0m", code, p)
	}
	fmt.Fprintf(c.out, "%s %s\n", p, text)
}

// printf writes unprefixed text (progress, the status table).
func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.out, format, args...)
}
