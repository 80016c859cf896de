package shoal_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/internal/testidentity"
)

// RequireUser and RequireSelf admit only the user a verified token names,
// verified by a method the route accepts; a header is no user.
func TestRequireUser(t *testing.T) {
	ca := testidentity.CA(t, "sys")
	self := testidentity.Source(t, ca, "profiles")
	tokens, err := identity.NewTokenVerifier(self, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := identity.NewTokenIssuer(testidentity.Source(t, ca, "gateway"), 0)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /any", func(w http.ResponseWriter, r *http.Request) {
		if u, ok := shoal.RequireUser(w, r); ok {
			w.Write([]byte(u.Subject))
		}
	})
	mux.HandleFunc("GET /profiles/{id}", func(w http.ResponseWriter, r *http.Request) {
		if u, ok := shoal.RequireSelf(w, r, r.PathValue("id")); ok { // "jwt" only, by default
			w.Write([]byte(u.Subject))
		}
	})
	guard := &identity.Guard{Self: self.Credentials().ID, Tokens: tokens}
	srv := testidentity.Server(t, self, guard.Wrap(mux))
	// Another service of the system calls: with or without a user.
	tr := &http.Transport{DialTLSContext: identity.NewDialer(testidentity.Source(t, ca, "api"), nil).ForService("profiles")}
	t.Cleanup(tr.CloseIdleConnections)
	api := &http.Client{Transport: tr}
	token := func(sub, auth string) string {
		tok, err := issuer.Token(sub, auth)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	ann, key := token("ann", "jwt"), token("ann", "api_key:mobile")
	for _, tt := range []struct {
		name, path, header, value string
		want                      int
		body                      string // the answer, or a part of the error message
	}{
		{"any method", "/any", identity.UserTokenHeader, key, 200, "ann"},
		{"no one", "/any", "", "", 401, "no signed-in user"},
		{"a header is no user", "/any", "Shoal-Subject", "ann", 401, "no signed-in user"},
		{"self", "/profiles/ann", identity.UserTokenHeader, ann, 200, "ann"},
		{"another user", "/profiles/bob", identity.UserTokenHeader, ann, 403, `"bob" is not the signed-in user`},
		{"an API key named as the user", "/profiles/ann", identity.UserTokenHeader, key, 401,
			"the user was verified by api_key:mobile; this route needs one verified by jwt"},
		{"no one, self route", "/profiles/ann", "", "", 401, "this route needs one verified by jwt"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set(tt.header, tt.value)
			}
			resp, err := api.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s, want %d", resp.Status, body, tt.want)
			}
			if got := resp.Header.Get("WWW-Authenticate"); (tt.want == 401) != (got != "") {
				t.Errorf("WWW-Authenticate %q on a %d", got, tt.want)
			}
			got := string(body)
			if tt.want != 200 {
				var e struct{ Error struct{ Message string } }
				if err := json.Unmarshal(body, &e); err != nil {
					t.Fatalf("%s: %v", got, err)
				}
				got = e.Error.Message
			}
			if !strings.Contains(got, tt.body) {
				t.Errorf("answer %q, want %q in it", got, tt.body)
			}
		})
	}
}
