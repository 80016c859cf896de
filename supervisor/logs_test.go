package supervisor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shoal-dev/shoal/internal/syncbuf"
)

func TestLineWriter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   []string
	}{
		{"one line", []string{"hello\n"}, []string{"hello"}},
		{"split across writes", []string{"hel", "lo\nwor", "ld\n"}, []string{"hello", "world"}},
		{"crlf", []string{"a\r\nb\r\n"}, []string{"a", "b"}},
		{"last line without newline", []string{"a\nb"}, []string{"a", "b"}},
		{"empty lines kept", []string{"\n\n"}, []string{"", ""}},
		{"overlong line cut", []string{strings.Repeat("x", maxLine-1), "xy\n"}, []string{strings.Repeat("x", maxLine), "y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			w := &lineWriter{emit: func(s string) { got = append(got, s) }}
			for _, s := range tc.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			w.flush()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLogHubKeepsRecentLinesInOrder(t *testing.T) {
	h := newLogHub()
	for i := range LogLines + 10 {
		h.add("a", 1, fmt.Sprint("a", i))
		if i%100 == 0 {
			h.add("b", 2, fmt.Sprint("b", i))
		}
	}
	lines, _, _ := h.since("a", 1, 0)
	if len(lines) != LogLines || lines[0].text != "a10" || lines[LogLines-1].text != fmt.Sprint("a", LogLines+9) {
		t.Fatalf("a/1 kept %d lines, %q .. %q", len(lines), lines[0].text, lines[len(lines)-1].text)
	}
	var b strings.Builder
	if err := h.follow(context.Background(), AllLogs, false, &b, func() {}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasPrefix(out, "b/2 | b0\n") || !strings.Contains(out, "a/1 | a100\nb/2 | b100\na/1 | a101\n") {
		t.Errorf("merged logs not in arrival order:\n%.300s", out)
	}
	if strings.Contains(out, "a/1 | a9\n") {
		t.Error("a line older than the ring was kept")
	}
}

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"KILL", "KILL", true}, {"kill", "KILL", true}, {"SIGTERM", "TERM", true}, {"", "KILL", true},
		{"STOP", "STOP", true}, {"CONT", "CONT", true}, {"INT", "INT", true}, {"HUP", "HUP", true},
		{"USR1", "", false}, {"9", "", false},
	} {
		_, name, err := parseSignal(tc.in)
		if (err == nil) != tc.ok || name != tc.want {
			t.Errorf("parseSignal(%q) = %q, %v", tc.in, name, err)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) {
			t.Errorf("error %q does not name the value", err)
		}
	}
}

func TestConsolePrefixes(t *testing.T) {
	var b strings.Builder
	c := newConsole(&b, false, 9)
	c.line("web/1", 0, "hi")
	c.color = true
	c.line("web/1", 0, "hi")
	c.line("shoal", -1, "note")
	stop := make(chan struct{})
	close(stop)
	c.run(stop) // writes what is queued, then returns
	want := "web/1     | hi\n\x1b[36mweb/1     |\x1b[0m hi\n\x1b[1mshoal     |\x1b[0m note\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("console (-want +got):\n%s", diff)
	}
}

// gateWriter blocks every Write until open is closed, like a terminal after
// Ctrl-S or a pager nobody scrolls; entered is signalled on each Write. Its
// Buffer keeps what got through.
type gateWriter struct {
	entered chan struct{} // size 1
	open    chan struct{}
	syncbuf.Buffer
}

func newGateWriter() *gateWriter {
	return &gateWriter{entered: make(chan struct{}, 1), open: make(chan struct{})}
}

func (w *gateWriter) Write(p []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	<-w.open
	return w.Buffer.Write(p)
}

func TestConsoleDropsInsteadOfBlocking(t *testing.T) {
	w := newGateWriter()
	c := newConsole(w, false, 5)
	line := func(i int) string { return c.format("a/1", 0, fmt.Sprintf("line %02d", i)) }
	c.limit = 10 * len(line(0)) // room for ten lines
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		c.run(stop)
	}()
	c.line("a/1", 0, "first")
	<-w.entered // the writer is stuck in Write with "first"

	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := range 50 {
			c.line("a/1", 0, fmt.Sprintf("line %02d", i))
		}
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		close(w.open)
		t.Fatal("console.line blocked on a stalled writer")
	}
	close(w.open)
	close(stop)
	<-done
	var want strings.Builder
	want.WriteString(c.format("a/1", 0, "first"))
	for i := range 10 {
		want.WriteString(line(i))
	}
	want.WriteString(c.format("shoal", -1, "(40 lines dropped: the output was not read fast enough)"))
	if diff := cmp.Diff(want.String(), w.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}
