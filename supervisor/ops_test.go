package supervisor

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRetireOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		states []string // of instances 1, 2, ...
		want   []int    // indexes, in retirement order
	}{
		{"all serving: highest index first", []string{StateServing, StateServing, StateServing}, []int{3, 2, 1}},
		{"not serving first", []string{StateCrashed, StateServing, StateStarting, StateServing, StateUnhealthy}, []int{5, 3, 1, 4, 2}},
		{"a crashed low index before serving high ones", []string{StateCrashed, StateServing, StateServing}, []int{1, 3, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ins []*instance
			for i, st := range tc.states {
				ins = append(ins, &instance{index: i + 1, state: st})
			}
			var got []int
			for _, in := range retireOrder(ins) {
				got = append(got, in.index)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKillExitedProcess: a process that exited after kill looked it up (its
// Wait has returned) is reported as not running, not as an internal error.
func TestKillExitedProcess(t *testing.T) {
	sup, err := New(&Manifest{Dir: t.TempDir(), Services: []*ServiceSpec{{Name: "a", Command: []string{"true"}}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	svc := sup.byName["a"]
	in := &instance{sup: sup, svc: svc, index: 1, state: StateServing, proc: cmd.Process}
	svc.insts = []*instance{in}
	for _, index := range []int{1, -1} {
		_, err = sup.kill("a", index, "KILL")
		var oe *opError
		if !errors.As(err, &oe) || oe.status != http.StatusConflict || oe.code != "not_running" || !strings.Contains(oe.msg, "exited") {
			t.Errorf("kill a/%d of an exited process = %#v, want 409 not_running", index, err)
		}
	}
}

// TestUnknownIndex: kill and logs refuse an index the service has no
// instance at alike, naming the ones it has.
func TestUnknownIndex(t *testing.T) {
	sup, err := New(&Manifest{Dir: t.TempDir(), Services: []*ServiceSpec{{Name: "api", Command: []string{"true"}}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := sup.byName["api"]
	for i := 1; i <= 3; i++ {
		svc.insts = append(svc.insts, &instance{sup: sup, svc: svc, index: i, state: StateServing})
	}
	const want = "api has no instance 7 (instances: 1, 2, 3)"
	_, err = sup.kill("api", 7, "KILL")
	var oe *opError
	if !errors.As(err, &oe) || oe.status != http.StatusNotFound || oe.code != "unknown_instance" || oe.msg != want {
		t.Errorf("kill api/7 = %#v, want 404 unknown_instance %q", err, want)
	}

	logs := func(query string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a follow ends at once
		req := httptest.NewRequestWithContext(ctx, "GET", pathLogs+"?service=api&index="+query, nil)
		req.Header.Set(tokenHeader, sup.token)
		sup.controlHandler().ServeHTTP(rec, req)
		return rec
	}
	if rec := logs("7"); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"unknown_instance"`) || !strings.Contains(rec.Body.String(), want) {
		t.Errorf("logs api/7: %d %s, want 404 unknown_instance %q", rec.Code, rec.Body, want)
	}
	// An instance a scale is about to add may be followed.
	if rec := logs("7&follow=1"); rec.Code != http.StatusOK {
		t.Errorf("logs api/7 -f: %d %s, want 200", rec.Code, rec.Body)
	}
	// An instance scaled away keeps its lines.
	sup.logs.add("api", 4, "bye")
	if rec := logs("4"); rec.Code != http.StatusOK || rec.Body.String() != "api/4 | bye\n" {
		t.Errorf("logs api/4 (scaled away): %d %q, want its line", rec.Code, rec.Body)
	}
}
