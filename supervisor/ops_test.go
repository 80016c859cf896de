package supervisor

import (
	"errors"
	"net/http"
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
