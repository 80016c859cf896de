package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/e2e/flixedge"
)

// Ready means ready: the moment shoal up reports every instance serving,
// every instance's discovery view holds the services it calls (none became
// ready without them), so the first home page through the gateway is not
// degraded for lack of discovery ("no instances known").
func TestUpReadyMeansReady(t *testing.T) {
	text, ports := referenceManifest(t)
	dir := scratchDir(t)
	sys := &system{manifest: filepath.Join(dir, "shoal.yaml"), gateway: fmt.Sprintf("http://127.0.0.1:%d", ports[0])}
	if err := os.WriteFile(sys.manifest, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	sys.up = startProcArgs(t, "shoal", "shoal up", []string{"up", "-f", sys.manifest}, "NO_COLOR=1")
	t.Cleanup(func() { sys.shoal(t, "down") })

	serving := regexp.MustCompile(`(\d+)/(\d+) instances serving`)
	var m []string
	waitFor(t, 180*time.Second, "shoal up to report its instances serving", func() bool {
		select {
		case <-sys.up.exited:
			t.Fatalf("shoal up exited early:\n%s", sys.up.out.String())
		default:
		}
		m = serving.FindStringSubmatch(sys.up.out.String())
		return m != nil
	})
	if m[1] != m[2] {
		// An instance that lost its port to another process before it
		// listened is restarted on a fresh one; shoal up reports the
		// others meanwhile. Serving is then when ps lists them all.
		t.Logf("shoal up reported %s of %s instances serving; waiting for the rest", m[1], m[2])
		waitFor(t, 60*time.Second, "every instance serving", func() bool {
			list := sys.ps(t)
			for _, in := range list {
				if in.State != "serving" {
					return false
				}
			}
			return len(list) > 0
		})
	}
	reported := len(sys.up.out.String())

	// At once, as a user who waited for that line: sign in, then the home
	// page, through the gateways.
	fl := flixedge.New(sys.gateway, fmt.Sprintf("http://127.0.0.1:%d", ports[1]))
	token, err := fl.SignIn(1, 5*time.Second)
	if err != nil {
		t.Fatalf("first sign-in after serving: %v", err)
	}
	a, err := fl.Do(flixedge.Request{Method: "GET", Path: "/home", Token: token}, 5*time.Second)
	var home homePage
	if err != nil || a.Status != 200 || a.Decode(&home) != nil {
		t.Fatalf("first GET /home after serving: %v %d %s", err, a.Status, a.Body)
	}

	// Every SDK instance sees every service it calls.
	for _, in := range sys.ps(t) {
		if in.Service == "trailers" { // not an SDK program: no /infoz
			continue
		}
		var info struct {
			State   string   `json:"state"`
			Calls   []string `json:"calls"`
			Missing []string `json:"missing"`
		}
		resp, err := http.Get("http://" + in.Admin + "/infoz")
		if err != nil {
			t.Fatalf("%s/%d /infoz: %v", in.Service, in.Index, err)
		}
		err = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		if err != nil || info.State != "serving" || len(info.Missing) > 0 {
			t.Errorf("%s/%d: state %q, calls %v, missing %v (%v)", in.Service, in.Index, info.State, info.Calls, info.Missing, err)
		}
	}

	// A row may come back degraded on a machine this busy (a row's call
	// over its budget), but never because a service was not in discovery:
	// the api logs why a page was degraded.
	after := sys.up.out.String()[reported:]
	if strings.Contains(after, "no instances known") {
		t.Errorf("after serving, an instance called a service it did not know of:\n%s", after)
	}
	if len(home.Degraded) > 0 {
		t.Logf("first home page degraded %v, not for lack of discovery; shoal up's output since serving:\n%s", home.Degraded, after)
	}
}
