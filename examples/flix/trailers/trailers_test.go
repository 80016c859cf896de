package trailers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/handoff/handofftest"
)

// lines collects a process's output lines as they come.
type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l.mu.Lock()
		l.all = append(l.all, sc.Text())
		l.mu.Unlock()
	}
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

// TestTrailersPy runs trailers.py as shoal up does, on the socket it is
// given, and as a platform that only sets PORT would (the port reserved by
// the test: trailers.py binds it with SO_REUSEADDR).
func TestTrailersPy(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("python3 is not installed (%v): trailers.py is not tested", err)
	}
	for _, inherit := range []bool{true, false} {
		t.Run(fmt.Sprintf("inherit=%v", inherit), func(t *testing.T) { testTrailersPy(t, python, inherit) })
	}
}

func testTrailersPy(t *testing.T, python string, inherit bool) {
	p := handofftest.Port(t)
	port := p.Addr().Port
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "trailers.py")
	cmd.Env = append(cmd.Environ(), fmt.Sprint("PORT=", port))
	if inherit {
		// No usable PORT: only the socket can make it serve.
		cmd.Env = append(cmd.Env, "PORT=unusable")
		p.Pass(cmd)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := new(lines)
	outDone := make(chan struct{})
	go func() { out.read(stdout); close(outDone) }()
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// Wait until it serves (a supervisor's health check does the same).
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("/healthz: %d", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after 10s: %v\nstdout:\n%s\nstderr:\n%s", err, out, &stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	tests := []struct {
		path       string
		wantStatus int
		want       map[string]any
	}{
		{"/trailers/7", 200, map[string]any{"title": 7.0, "url": "https://cdn.example/trailers/7.mp4"}},
		{"/trailers/2400?x=1", 200, map[string]any{"title": 2400.0, "url": "https://cdn.example/trailers/2400.mp4"}},
		{"/healthz", 200, map[string]any{"status": "alive"}},
		{"/readyz", 200, map[string]any{"status": "ready"}},
		{"/trailers/abc", 404, nil},
		{"/trailers/../etc", 404, nil},
		{"/nope", 404, nil},
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, tt := range tests {
		resp, err := client.Get(base + tt.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		var got map[string]any
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tt.wantStatus || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %q %v, want %d JSON", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), err, tt.wantStatus)
			continue
		}
		if tt.want == nil {
			if e, ok := got["error"].(map[string]any); !ok || e["code"] != "not_found" {
				t.Errorf("GET %s: %v, want a JSON not_found error", tt.path, got)
			}
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("GET %s = %v, want %v", tt.path, got, tt.want)
		}
	}

	// An idle keep-alive connection must not hold up the shutdown.
	client.CloseIdleConnections()
	idle, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", port))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-outDone
	err = cmd.Wait()
	exited = true
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("after SIGTERM: %v (want exit 0)\nstderr:\n%s", err, &stderr)
		}
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v", took)
	}
	// One line per request on stdout, but none for a passing health or
	// readiness check: the supervisor sends one a second, forever.
	log := out.String()
	for _, tt := range tests {
		probe := strings.HasPrefix(tt.path, "/healthz") || strings.HasPrefix(tt.path, "/readyz")
		if logged := strings.Contains(log, `"GET `+tt.path+`"`); logged == probe {
			t.Errorf("GET %s logged: %v, want %v:\n%s", tt.path, logged, !probe, log)
		}
	}
	if n := strings.Count(log, `"GET /trailers/7" 200`); n != 1 {
		t.Errorf("%d log lines for GET /trailers/7, want 1:\n%s", n, log)
	}
}
