package trailers_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/handoff/handofftest"
	"github.com/shoal-dev/shoal/identity"
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

// TestTrailersPyIdentity runs trailers.py with the identity shoal up gives
// it: mutual TLS only, the policy applied to the caller in the client
// certificate (health checks aside), and a renewed certificate used from
// the next connection on.
func TestTrailersPyIdentity(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("python3 is not installed (%v): trailers.py is not tested", err)
	}
	dir := t.TempDir()
	auth, err := identity.OpenAuthority(filepath.Join(dir, "identity"), "flix")
	if err != nil {
		t.Fatal(err)
	}
	files, err := auth.IssueFiles("trailers", filepath.Join(dir, "trailers-1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	p := handofftest.Port(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "trailers.py")
	cmd.Env = append(append(cmd.Environ(), files.Env()...), "SHOAL_NAME=trailers", `SHOAL_POLICY={"allow":{"trailers":["gateway"]}}`)
	p.Pass(cmd)
	var output strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	addr := p.Addr().String()
	// as calls trailers as service, one new connection per request.
	as := func(service string) *http.Client {
		creds, err := auth.Credentials(service, 0)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			DialTLSContext: identity.NewDialer(identity.NewSource(creds), nil).ForService("trailers")}}
	}
	get := func(c *http.Client, path string) (*http.Response, error) {
		resp, err := c.Get("https://" + addr + path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := get(as("shoal-supervisor"), "/healthz")
		if err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving over mutual TLS after 10s: %v %v\noutput:\n%s", resp, err, &output)
		}
		time.Sleep(20 * time.Millisecond)
	}

	for _, tt := range []struct {
		caller, path string
		want         int
	}{
		{"gateway", "/trailers/7", 200},
		{"ratings", "/trailers/7", 403},
		{"ratings", "/readyz", 200}, // any service of the system may ask
		{"shoal-supervisor", "/trailers/7", 403},
	} {
		resp, err := get(as(tt.caller), tt.path)
		if err != nil || resp.StatusCode != tt.want {
			t.Errorf("%s: GET %s: %v %v, want %d", tt.caller, tt.path, resp, err, tt.want)
		}
	}

	// Nothing without a certificate of the system.
	if resp, err := http.Get("http://" + addr + "/trailers/7"); err == nil {
		resp.Body.Close()
		t.Errorf("plain HTTP answered %s", resp.Status)
	}
	pool := x509.NewCertPool()
	pool.AddCert(auth.CA().Cert)
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "trailers"}}}
	if resp, err := get(noCert, "/healthz"); err == nil {
		t.Errorf("TLS without a client certificate answered %s", resp.Status)
	}
	other, err := identity.OpenAuthority(filepath.Join(dir, "other"), "flix")
	if err != nil {
		t.Fatal(err)
	}
	creds, err := other.Credentials("gateway", 0)
	if err != nil {
		t.Fatal(err)
	}
	foreign := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialTLSContext: identity.NewDialer(identity.NewSource(creds), nil).ForService("trailers")}}
	if resp, err := get(foreign, "/healthz"); err == nil {
		t.Errorf("a certificate of another CA answered %s", resp.Status)
	}

	// Renewed in place: the next connection gets the new certificate.
	renewed, err := auth.Issue("trailers", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := renewed.WriteFiles(files.Cert, files.Key); err != nil {
		t.Fatal(err)
	}
	resp, err := get(as("gateway"), "/trailers/8")
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(renewed.Leaf.SerialNumber) != 0 {
		t.Errorf("after the renewal, trailers presents serial %v, want the new %v", got, renewed.Leaf.SerialNumber)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	exited = true
	if err != nil {
		t.Fatalf("after SIGTERM: %v (want exit 0)\noutput:\n%s", err, &output)
	}
	if out := output.String(); !strings.Contains(out, "mutual TLS") || !strings.Contains(out, `"GET /trailers/7" 403`) {
		t.Errorf("output lacks the TLS start line or the 403:\n%s", out)
	}
}
