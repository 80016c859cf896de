package shoal

import (
	"bufio"
	"flag"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shoal-dev/shoal/resilience"
)

func TestServerSettingsFromEnvAndFlags(t *testing.T) {
	env := map[string]string{
		EnvTLSCertFile: "/etc/shoal/cert.pem", EnvTLSKeyFile: "/etc/shoal/key.pem", EnvH2C: "on",
		EnvReadHeaderTimeout: "2s", EnvMaxHeaderBytes: "65536",
	}
	c := Config{Name: "edge"}
	if err := c.FromEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	want := Config{Name: "edge", TLSCertFile: "/etc/shoal/cert.pem", TLSKeyFile: "/etc/shoal/key.pem", H2C: true,
		ReadHeaderTimeout: 2 * time.Second, MaxHeaderBytes: 65536}
	if d := cmp.Diff(want, c, cmpopts.IgnoreFields(Config{}, "Logger")); d != "" {
		t.Fatalf("from env (-want +got):\n%s", d)
	}

	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-tls-cert-file", "c.pem", "-tls-key-file", "k.pem", "-h2c=false",
		"-read-header-timeout", "300ms", "-max-header-bytes", "4096"}); err != nil {
		t.Fatal(err)
	}
	want = Config{Name: "edge", TLSCertFile: "c.pem", TLSKeyFile: "k.pem", ReadHeaderTimeout: 300 * time.Millisecond, MaxHeaderBytes: 4096}
	if d := cmp.Diff(want, c, cmpopts.IgnoreFields(Config{}, "Logger")); d != "" {
		t.Fatalf("flags over env (-want +got):\n%s", d)
	}

	for key, v := range map[string]string{EnvH2C: "yes", EnvReadHeaderTimeout: "5", EnvMaxHeaderBytes: "1MiB"} {
		c := Config{Name: "edge"}
		err := c.FromEnv(func(k string) string { return map[string]string{key: v}[k] })
		if err == nil || !strings.Contains(err.Error(), key+"=") {
			t.Errorf("%s=%q: err = %v, want one naming the variable", key, v, err)
		}
	}
}

func TestServerSettingsDefaultsAndValidation(t *testing.T) {
	c := Config{Name: "a"}.withDefaults()
	if c.ReadHeaderTimeout != 5*time.Second || c.MaxHeaderBytes != 1<<20 {
		t.Errorf("defaults: read_header_timeout %v, max_header_bytes %d; want 5s, 1 MiB", c.ReadHeaderTimeout, c.MaxHeaderBytes)
	}
	err := Config{Name: "a", ReadHeaderTimeout: -time.Second, MaxHeaderBytes: -1}.withDefaults().Validate()
	for _, w := range []string{"read_header_timeout -1s", "max_header_bytes -1"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to mention %q", err, w)
		}
	}
}

// TestServerLimits: the service's listener applies the configured header
// limits: a client trickling its headers is cut off, headers over the limit
// get 431.
func TestServerLimits(t *testing.T) {
	const headerTimeout = 300 * time.Millisecond
	svc, _, _ := start(t, Config{Name: "limits", ReadHeaderTimeout: headerTimeout, MaxHeaderBytes: 4 << 10}, protoHandler)

	// Before the dial: the server's header timer starts once it accepts,
	// which may be before Dial returns.
	begin := time.Now()
	conn, err := net.Dial("tcp", svc.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	trickle := "GET /slow HTTP/1.1\r\nHost: limits\r\nX-Slow: " + strings.Repeat("a", 200)
	var closedAfter time.Duration
	for i := range len(trickle) {
		if _, err := conn.Write([]byte{trickle[i]}); err != nil {
			closedAfter = time.Since(begin)
			break
		}
		time.Sleep(20 * time.Millisecond) // the slowloris's pace, not synchronisation
	}
	if closedAfter == 0 {
		// Writes may still succeed into a closed socket's buffer; the
		// read sees the close (with a 408, Go's answer to a timeout).
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, conn)
		closedAfter = time.Since(begin)
	}
	t.Logf("cut off after %v", closedAfter)
	if closedAfter > 5*time.Second || closedAfter < headerTimeout {
		t.Errorf("trickling client cut off after %v, want about %v", closedAfter, headerTimeout)
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+svc.Addr()+"/big", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 16<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("16 KiB of headers over a 4 KiB limit: %d, want 431", resp.StatusCode)
	}
}

// TestStreamsDoNotHoldAdmission: a stream (server-sent events here) is let
// in by admission control but does not keep its place, so open streams
// never fill the concurrency limit.
func TestStreamsDoNotHoldAdmission(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events" {
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: hello\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	const limit = 2
	svc, _, _ := start(t, Config{Name: "streams", Admission: resilience.LimiterConfig{MaxLimit: limit}}, h)
	defer close(release)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	for range limit + 1 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+svc.Addr()+"/events", nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream: %d, want 200", resp.StatusCode)
		}
		if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || line != "data: hello\n" {
			t.Fatalf("first event %q, %v", line, err)
		}
	}
	resp, _ := get(t, hc, "http://"+svc.Addr()+"/plain")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("plain request with %d streams open under a limit of %d: %d, want 200", limit+1, limit, resp.StatusCode)
	}
	if st := svc.Admission(); st.InFlight != 0 {
		t.Errorf("admission in flight = %d with only streams open, want 0", st.InFlight)
	}
}
