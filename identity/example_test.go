package identity_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/shoal-dev/shoal/identity"
)

// A system's authority issues two instances their files; profiles serves
// mutual TLS behind a Guard that lets only api call it, and api calls it
// through a per-service transport. The same client asking for catalog at
// profiles' address is refused in the handshake.
func Example() {
	dir, err := os.MkdirTemp("", "identity-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// What `shoal up` does once per system, and per instance.
	ca, err := identity.OpenAuthority(filepath.Join(dir, "identity"), "flix")
	if err != nil {
		log.Fatal(err)
	}
	profilesFiles, err := ca.IssueFiles("profiles", filepath.Join(dir, "profiles-1"), 0)
	if err != nil {
		log.Fatal(err)
	}
	apiFiles, err := ca.IssueFiles("api", filepath.Join(dir, "api-1"), 0)
	if err != nil {
		log.Fatal(err)
	}

	// The profiles instance: it would read its Files with FilesFromEnv.
	profiles, err := identity.LoadSource(profilesFiles, nil)
	if err != nil {
		log.Fatal(err)
	}
	guard := &identity.Guard{
		Self:   profiles.Credentials().ID,
		Policy: &identity.Policy{Allow: map[string][]string{"profiles": {"api"}}},
	}
	srv := httptest.NewUnstartedServer(guard.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, _ := identity.CallerFrom(r.Context())
		fmt.Fprintf(w, "hello %s", caller)
	})))
	srv.TLS = identity.ServerConfig(profiles)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	// The api instance.
	api, err := identity.LoadSource(apiFiles, nil)
	if err != nil {
		log.Fatal(err)
	}
	dialer := identity.NewDialer(api, nil)
	toProfiles := &http.Transport{DialTLSContext: dialer.ForService("profiles")}
	defer toProfiles.CloseIdleConnections()
	resp, err := (&http.Client{Transport: toProfiles}).Get("https://" + srv.Listener.Addr().String() + "/me")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println("profiles answered:", string(body))

	toCatalog := &http.Transport{DialTLSContext: dialer.ForService("catalog")}
	defer toCatalog.CloseIdleConnections()
	if _, err := (&http.Client{Transport: toCatalog}).Get("https://" + srv.Listener.Addr().String() + "/"); err != nil {
		fmt.Println("asking for catalog at profiles' address: refused")
	}
	// Output:
	// profiles answered: hello spiffe://flix/api
	// asking for catalog at profiles' address: refused
}
