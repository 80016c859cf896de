package shoal

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoal-dev/shoal/internal/testcert"
)

// protoHandler answers with the protocol the request came in on.
var protoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, r.Proto)
})

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, c, req)
}

// do sends req with c and returns the response with its body read.
func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, string(body)
}

func TestTLSServesHTTP2AndHTTP1(t *testing.T) {
	certFile, keyFile, cert := testcert.SelfSigned(t, t.TempDir(), "")
	svc, _, _ := start(t, Config{Name: "edge", TLSCertFile: certFile, TLSKeyFile: keyFile}, protoHandler)
	pool := x509.NewCertPool()
	pool.AddCert(cert)

	for _, tt := range []struct {
		name      string
		protocols func(*http.Protocols)
		major     int
	}{
		{"h2 by ALPN", func(p *http.Protocols) { p.SetHTTP1(true); p.SetHTTP2(true) }, 2},
		{"HTTP/1.1 only client", func(p *http.Protocols) { p.SetHTTP1(true) }, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: new(http.Protocols)}
			tt.protocols(tr.Protocols)
			t.Cleanup(tr.CloseIdleConnections)
			c := &http.Client{Transport: tr}
			resp, body := get(t, c, "https://"+svc.Addr()+"/proto")
			if resp.ProtoMajor != tt.major || resp.TLS == nil {
				t.Errorf("response over %s (TLS %v), want HTTP/%d over TLS", resp.Proto, resp.TLS != nil, tt.major)
			}
			if want := "HTTP/" + map[int]string{1: "1.1", 2: "2.0"}[tt.major]; body != want {
				t.Errorf("handler saw %s, want %s", body, want)
			}
			// The admin paths are not on the public listener: the
			// handler answers them.
			if _, got := get(t, c, "https://"+svc.Addr()+PathInfo); got != body {
				t.Errorf("GET %s over TLS answered %q, want the handler's %q: admin paths belong to the admin listener", PathInfo, got, body)
			}
		})
	}

	// The admin listener, in plain HTTP, says how to call the instance.
	resp, body := get(t, http.DefaultClient, "http://"+svc.AdminAddr()+PathInfo)
	var info Info
	if err := json.Unmarshal([]byte(body), &info); err != nil || resp.StatusCode != 200 || info.Scheme != "https" {
		t.Errorf("infoz: %d %s (%v), want 200 and scheme https", resp.StatusCode, body, err)
	}
	// Plain HTTP to the TLS listener is refused.
	resp, _ = get(t, http.DefaultClient, "http://"+svc.Addr()+"/proto")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to a TLS instance: %d, want 400", resp.StatusCode)
	}
}

func TestH2C(t *testing.T) {
	svc, _, _ := start(t, Config{Name: "inner", H2C: true}, protoHandler)
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(h2c.CloseIdleConnections)
	resp, body := get(t, &http.Client{Transport: h2c}, "http://"+svc.Addr()+"/proto")
	if resp.ProtoMajor != 2 || body != "HTTP/2.0" {
		t.Errorf("h2c client: response %s, handler saw %s; want HTTP/2 both", resp.Proto, body)
	}
	// HTTP/1.1 callers (the SDK client, the supervisor) are still served.
	resp, body = get(t, http.DefaultClient, "http://"+svc.Addr()+"/proto")
	if resp.ProtoMajor != 1 || body != "HTTP/1.1" {
		t.Errorf("HTTP/1.1 client: response %s, handler saw %s", resp.Proto, body)
	}

	// Without H2C, an h2c client finds no HTTP/2.
	plain, _, _ := start(t, Config{Name: "plain"}, protoHandler)
	if resp, err := (&http.Client{Transport: h2c}).Get("http://" + plain.Addr() + "/proto"); err == nil {
		resp.Body.Close()
		t.Errorf("h2c to a service without H2C: %s, want an error", resp.Proto)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := testcert.SelfSigned(t, dir, "a-")
	_, otherKey, _ := testcert.SelfSigned(t, dir, "b-")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name      string
		cert, key string
		want      []string
	}{
		{"valid", cert, key, nil},
		{"cert only", cert, "", []string{"tls_cert_file", cert, "set both or neither"}},
		{"key only", "", key, []string{"tls_key_file", key, "set both or neither"}},
		{"missing cert", missing, key, []string{"tls_cert_file", missing, "no such file"}},
		{"missing key", cert, missing, []string{"tls_key_file", missing, "no such file"}},
		{"not a pair", cert, otherKey, []string{cert, otherKey, "not a certificate and its key", "does not match"}},
		{"not PEM", garbage, key, []string{garbage, "certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Name: "edge", TLSCertFile: tt.cert, TLSKeyFile: tt.key}, protoHandler)
			checkErr(t, "New", err, tt.want)
		})
	}
}
