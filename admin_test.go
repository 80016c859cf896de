package shoal

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/testfault"
)

// TestAdminProfilesNeedOperatorToken: the admin listener serves profiles
// only to a bearer of a profile token for this service signed with the
// operator's key, whatever address the request comes from.
func TestAdminProfilesNeedOperatorToken(t *testing.T) {
	signer := testfault.NewSigner(t)
	svc, _, _ := start(t, Config{Name: "catalog", FaultKey: signer.PublicKey()}, http.NotFoundHandler())
	admin := "http://" + svc.AdminAddr()
	token := func(service string) string {
		tok, err := signer.Profile(service, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	fault := testfault.Token(t, signer, "catalog:error=503")
	forged, err := testfault.NewSigner(t).Profile("catalog", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, auth string
		want       int
		body       string
	}{
		{"no token", "", 401, "shoal profile signs one"},
		{"not a bearer token", "Basic YWRtaW46YWRtaW4=", 401, "Authorization: Bearer"},
		{"another service's token", "Bearer " + token("ratings"), 401, `not "catalog"`},
		{"a fault token", "Bearer " + fault, 401, `a token for "fault", not "profile"`},
		{"another key's token", "Bearer " + forged, 401, "invalid operator token"},
		{"the operator's token for catalog", "Bearer " + token("catalog"), 200, "goroutine"},
	} {
		for _, path := range []string{PathPprof, PathPprof + "goroutine?debug=1", PathPprof + "cmdline"} {
			req, err := http.NewRequest(http.MethodGet, admin+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, body := do(t, http.DefaultClient, req)
			if resp.StatusCode != tt.want {
				t.Errorf("%s: GET %s = %d, want %d: %s", tt.name, path, resp.StatusCode, tt.want, body)
				continue
			}
			var e ErrorBody
			if tt.want == 401 && (json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error.Message, tt.body) ||
				!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer")) {
				t.Errorf("%s: GET %s: body %q (want it to say %q), WWW-Authenticate %q", tt.name, path, body, tt.body, resp.Header.Get("WWW-Authenticate"))
			}
			if path == PathPprof && tt.want == 200 && !strings.Contains(body, tt.body) {
				t.Errorf("%s: the pprof index lacks %q", tt.name, tt.body)
			}
		}
	}
	// The scheme's case does not matter (RFC 6750); a profile may not
	// outlast the token that asked for it.
	for _, tt := range []struct {
		auth, path string
		want       int
	}{
		{"bearer " + token("catalog"), PathPprof + "cmdline", 200},
		{"Bearer " + token("catalog"), PathPprof + "profile?seconds=120", 400},
		{"Bearer " + token("catalog"), PathPprof + "trace?seconds=3600", 400},
	} {
		req, err := http.NewRequest(http.MethodGet, admin+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", tt.auth)
		if resp, body := do(t, http.DefaultClient, req); resp.StatusCode != tt.want {
			t.Errorf("GET %s = %d, want %d: %s", tt.path, resp.StatusCode, tt.want, body)
		} else if tt.want == 400 && !strings.Contains(body, "outlasts the token") {
			t.Errorf("GET %s: %s", tt.path, body)
		}
	}
	// Health, readiness, information and metrics stay open to probes and
	// Prometheus, which have no credentials to give.
	for _, path := range []string{PathHealth, PathReady, PathInfo, PathMetrics} {
		if resp, body := get(t, http.DefaultClient, admin+path); resp.StatusCode != 200 {
			t.Errorf("GET %s = %d: %s", path, resp.StatusCode, body)
		}
	}
}

// TestAdminProfilesWithoutOperatorKey: an instance given no operator key
// refuses profiles to everyone, saying what is missing.
func TestAdminProfilesWithoutOperatorKey(t *testing.T) {
	svc, _, _ := start(t, Config{Name: "catalog"}, http.NotFoundHandler())
	tok, err := testfault.NewSigner(t).Profile("catalog", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+svc.AdminAddr()+PathPprof+"profile?seconds=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, body := do(t, http.DefaultClient, req)
	if resp.StatusCode != 403 || !strings.Contains(body, EnvFaultKey) {
		t.Errorf("GET profile = %d %s, want 403 naming %s", resp.StatusCode, body, EnvFaultKey)
	}
}
