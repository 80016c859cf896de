package testidentity

import (
	"io"
	"net/http"
	"testing"

	"github.com/shoal-dev/shoal/identity"
)

// A caller with credentials of the same system reaches the server, which
// sees who it is; a caller of another system is refused in the handshake.
func TestServer(t *testing.T) {
	ca := CA(t, "sys")
	srv := Server(t, Source(t, ca, "svc"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := identity.PeerFromRequest(r)
		if err != nil {
			t.Error(err)
			return
		}
		io.WriteString(w, id.Service)
	}))
	call := func(src *identity.Source) (string, error) {
		tr := &http.Transport{DialTLSContext: identity.NewDialer(src, nil).ForService("svc")}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := call(Source(t, ca, "caller")); err != nil || got != "caller" {
		t.Errorf("a caller of the system: %q, %v; want it seen as caller", got, err)
	}
	if _, err := call(Source(t, CA(t, "other"), "caller")); err == nil {
		t.Error("a caller of another system got an answer")
	}
}
