package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/handoff/handofftest"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/internal/syncbuf"
)

const badGatewayManifest = `services:
  catalog:
    build: ./catalog
gateway:
  routes:
    - {path: /v1/, service: catalog, auth: jwt}
`

func TestGatewayRefusesBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shoal.yaml")
	if err := os.WriteFile(path, []byte(badGatewayManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "\n" + path + ":6:44: gateway.routes[0].auth: jwt needs gateway.auth.jwt configured (the keys tokens are checked with)\n" +
		"shoal: fix the manifest and run the command again; nothing was started\n"
	code, _, errOut := runCLI(t, "gateway", "--config", path, "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("--config: status %d, stderr:\n%s\nwant status 1 and %q", code, errOut, want)
	}

	var out, errBuf bytes.Buffer
	e := env{stdout: &out, stderr: &errBuf, isTerminal: func() bool { return false },
		getenv: func(k string) string {
			if k == envGatewayConfig {
				return path
			}
			return ""
		}}
	if code := run(context.Background(), e, []string{"gateway", "--addr", "127.0.0.1:0"}); code != 1 || !strings.Contains(errBuf.String(), want) {
		t.Errorf("%s: status %d, stderr:\n%s", envGatewayConfig, code, errBuf.String())
	}
	code, _, errOut = runCLI(t, "gateway", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != 1 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("missing config: status %d, stderr %s", code, errOut)
	}
}

// The gateway runs with its routes, writes the access log and exports
// the per-route metrics on its /metrics.
func TestGatewayServesRoutesAndMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shoal.yaml")
	manifest := "services:\n  catalog:\n    build: ./catalog\ngateway:\n  routes:\n    - {path: /v1/, service: catalog, strip: true}\n"
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	// Reserved for the test: the gateway binds it (with SO_REUSEADDR), no
	// other socket can take it meanwhile.
	addr, admin := handofftest.Port(t).Addr().String(), handofftest.Port(t).Addr().String()
	var errOut syncbuf.Buffer
	e := env{stdout: io.Discard, stderr: &errOut, getenv: func(string) string { return "" }, isTerminal: func() bool { return false }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, e, []string{"gateway", "--config", path, "--access-log", "--addr", addr, "--admin-addr", admin, "--gossip-addr", "127.0.0.1:0"})
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("gateway exited %d:\n%s", code, errOut.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("gateway did not stop")
		}
	}()

	get := func(hostport, p string) (int, string) {
		resp, err := http.Get("http://" + hostport + p)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		// The route's service has no instance: 503 from the route.
		code, body := get(addr, "/v1/titles/1")
		if code == http.StatusServiceUnavailable && strings.Contains(body, `service \"catalog\" has no instance`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not serving its route: %d %s\n%s", code, body, errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Metrics are the admin listener's, never the public one's.
	if code, _ := get(addr, "/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics on the gateway's public address: %d, want 404", code)
	}
	_, metrics := get(admin, "/metrics")
	want := `shoal_gateway_requests_total{code="503",route="/v1/",service="catalog"}`
	if !strings.Contains(metrics, want) || !strings.Contains(metrics, `shoal_gateway_request_duration_seconds_count{route="/v1/",service="catalog"}`) {
		t.Errorf("/metrics lacks %s:\n%s", want, metrics)
	}
	if log := errOut.String(); !strings.Contains(log, `"msg":"access"`) || !strings.Contains(log, `"route":"/v1/"`) ||
		!strings.Contains(log, `"msg":"gateway config loaded"`) {
		t.Errorf("stderr lacks the config and access log lines:\n%s", log)
	}
}

// With the instance's identity files (shoal up sets them), the gateway
// signs user tokens with its certificate, which services verify with the
// system's bundle; without them it signs none; with only some, it does not
// start.
func TestGatewayTokenIssuer(t *testing.T) {
	dir := t.TempDir()
	ca, err := identity.OpenAuthority(filepath.Join(dir, "identity"), "flix")
	if err != nil {
		t.Fatal(err)
	}
	files, err := ca.IssueFiles("gateway", filepath.Join(dir, "gateway-1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range files.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	discard := slog.New(slog.DiscardHandler)
	tokens, src, err := tokenIssuer(func(k string) string { return env[k] }, discard)
	if err != nil || tokens == nil || src == nil {
		t.Fatalf("with identity files: %v, %v, %v", tokens, src, err)
	}
	tok, err := tokens.Token("p0001", "jwt")
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := identity.NewTokenVerifier(src, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := verifier.Verify(tok); err != nil || u.Subject != "p0001" || u.Auth != "jwt" || u.Issuer.String() != "spiffe://flix/gateway" {
		t.Errorf("token verified as %+v, %v", u, err)
	}
	if tokens, src, err := tokenIssuer(func(string) string { return "" }, discard); tokens != nil || src != nil || err != nil {
		t.Errorf("without identity files: %v, %v, %v", tokens, src, err)
	}
	delete(env, identity.EnvKey)
	if _, _, err := tokenIssuer(func(k string) string { return env[k] }, discard); err == nil || !strings.Contains(err.Error(), identity.EnvKey) {
		t.Errorf("without the key file: %v", err)
	}
}
