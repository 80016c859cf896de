package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/internal/testfault"
)

// procState is the state letter of pid in /proc (R, S, T for stopped...).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "gone"
	}
	// pid (comm) state ...: comm may hold spaces, so cut after the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return "?"
}

// hasEvent reports whether the feed holds a chaos event containing text.
func hasEvent(sup *Supervisor, text string) error {
	var all []string
	for _, e := range sup.Events(0, 0) {
		if e.Kind == EventChaos && strings.Contains(e.Message, text) {
			return nil
		}
		all = append(all, e.Kind+": "+e.Message)
	}
	return fmt.Errorf("no chaos event with %q in:\n%s", text, strings.Join(all, "\n"))
}

func TestChaos(t *testing.T) {
	m := testManifest(t.TempDir(), helloBin)
	m.Services = m.Services[:1] // hello ×2
	r := startSupervisor(t, m)
	ctx := context.Background()
	rem := r.remote
	hello := waitServing(t, rem, "hello", 2)

	t.Run("instances honour the operator's key", func(t *testing.T) {
		key, err := chaos.LoadKey(chaos.KeyFile(m.Dir))
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(chaos.KeyFile(m.Dir)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v %v", fi, err)
		}
		tok := testfault.Token(t, chaos.NewSigner(key), "hello:error=418")
		req, _ := http.NewRequest("GET", "https://"+hello[0].Addr+"/hello", nil)
		req.Header.Set(chaos.Header, tok)
		resp, err := r.caller(t, "hello").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 418 {
			t.Errorf("a signed hello:error=418 got %d: the instance did not get SHOAL_FAULT_KEY", resp.StatusCode)
		}
	})

	t.Run("dry run acts on nothing", func(t *testing.T) {
		res, err := rem.Chaos(ctx, ChaosAction{Service: "hello", Index: 1, Action: ActionKill, DryRun: true, By: "monkey"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res.Message, "monkey (dry run) would have killed hello/1") {
			t.Errorf("message %q", res.Message)
		}
		if err := hasEvent(r.sup, "would have killed hello/1"); err != nil {
			t.Error(err)
		}
		if now := psOf(t, rem, "hello")[0]; now.PID != hello[0].PID || procState(now.PID) == "T" {
			t.Errorf("a dry run touched hello/1: %+v", now)
		}
	})

	t.Run("stop, then the last serving instance is kept", func(t *testing.T) {
		pid := hello[0].PID
		res, err := rem.Chaos(ctx, ChaosAction{Service: "hello", Index: 1, Action: ActionStop, For: 1500 * time.Millisecond, KeepServing: true, By: "monkey"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Instance.PID != pid {
			t.Fatalf("stopped %+v, want hello/1 (pid %d)", res, pid)
		}
		// The kernel stops the process once it handles the signal.
		eventually(t, time.Second, "hello/1 stopped", func() error {
			if s := procState(pid); s != "T" {
				return fmt.Errorf("state %s", s)
			}
			return nil
		})
		var e *Error
		_, err = rem.Chaos(ctx, ChaosAction{Service: "hello", Index: 2, Action: ActionKill, KeepServing: true})
		if !errors.As(err, &e) || e.Status != http.StatusConflict || e.Code != "last_serving" {
			t.Errorf("killing hello/2 while hello/1 is frozen: %v, want 409 last_serving", err)
		}
		eventually(t, 10*time.Second, "hello/1 resumed", func() error {
			if s := procState(pid); s == "T" {
				return errors.New("still stopped")
			}
			return hasEvent(r.sup, "hello/1 resumed (monkey froze it for 1.5s)")
		})
		if err := hasEvent(r.sup, "monkey froze hello/1"); err != nil {
			t.Error(err)
		}
	})

	t.Run("slow freezes a share of the time", func(t *testing.T) {
		pid := hello[1].PID
		if _, err := rem.Chaos(ctx, ChaosAction{Service: "hello", Index: 2, Action: ActionSlow, For: 2 * time.Second, Pause: 0.5}); err != nil {
			t.Fatal(err)
		}
		stopped, running := 0, 0
		for range 100 {
			if procState(pid) == "T" {
				stopped++
			} else {
				running++
			}
			time.Sleep(10 * time.Millisecond) // sampling the process's state
		}
		if stopped < 10 || running < 10 {
			t.Errorf("over a second of slow, hello/2 was seen stopped %d and running %d times", stopped, running)
		}
		eventually(t, 10*time.Second, "hello/2 resumed", func() error { return hasEvent(r.sup, "hello/2 resumed") })
		if s := procState(pid); s == "T" {
			t.Errorf("hello/2 is left stopped")
		}
	})

	t.Run("kill", func(t *testing.T) {
		res, err := rem.Chaos(ctx, ChaosAction{Service: "hello", Index: -1, Action: ActionKill, By: "experiment x"})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "the killed instance restarted", func() error {
			for _, s := range psOf(t, rem, "hello") {
				if s.Index == res.Instance.Index && s.PID != res.Instance.PID && s.State == StateServing {
					return gone(res.Instance.PID)
				}
			}
			return errors.New("not yet")
		})
		if err := hasEvent(r.sup, "experiment x killed hello/"); err != nil {
			t.Error(err)
		}
	})

	t.Run("an instance removed while frozen drains", func(t *testing.T) {
		waitServing(t, rem, "hello", 2)
		if _, err := rem.Chaos(ctx, ChaosAction{Service: "hello", Index: 2, Action: ActionStop, For: time.Hour}); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		if err := rem.Scale(ctx, "hello", 1); err != nil {
			t.Fatal(err)
		}
		// Frozen, it could not drain: it would be killed after the drain
		// timeout (2s) plus the grace (2s). Continued, it drains at once.
		if took := time.Since(begin); took > 3*time.Second {
			t.Errorf("scaling a frozen instance away took %v", took)
		}
		var logs strings.Builder
		if err := rem.Logs(ctx, "hello", 2, false, &logs); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), `"msg":"stopped"`) {
			t.Errorf("hello/2 did not drain:\n%s", logs.String())
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			a      ChaosAction
			status int
			msg    string
		}{
			{ChaosAction{Service: "nope", Index: 1, Action: ActionKill}, 404, `no service "nope"`},
			{ChaosAction{Service: "hello", Index: 1, Action: "explode"}, 400, `action "explode"`},
			{ChaosAction{Service: "hello", Index: 0, Action: ActionKill}, 400, "index 0"},
			{ChaosAction{Service: "hello", Index: 1, Action: ActionSlow, Pause: 1}, 400, "pause 1"},
			{ChaosAction{Service: "hello", Index: 7, Action: ActionKill}, 409, "hello/7 has no running process"},
		} {
			var e *Error
			if _, err := rem.Chaos(ctx, tc.a); !errors.As(err, &e) || e.Status != tc.status || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("%+v: %v, want %d with %q", tc.a, err, tc.status, tc.msg)
			}
		}
	})
}

func TestChaosMessage(t *testing.T) {
	for _, tc := range []struct {
		a    ChaosAction
		want string
	}{
		{ChaosAction{Action: ActionKill}, "monkey killed history/2 (pid 7)"},
		{ChaosAction{Action: ActionKill, DryRun: true}, "monkey (dry run) would have killed history/2 (pid 7)"},
		{ChaosAction{Action: ActionStop, For: 5 * time.Second}, "monkey froze history/2 (pid 7) for 5s"},
		{ChaosAction{Action: ActionStop, For: 5 * time.Second, DryRun: true}, "monkey (dry run) would have frozen history/2 (pid 7) for 5s"},
		{ChaosAction{Action: ActionSlow, For: 10 * time.Second, Pause: 0.5}, "monkey slowed history/2 (pid 7) for 10s, frozen 50% of the time"},
		{ChaosAction{Action: ActionSlow, For: 10 * time.Second, Pause: 0.5, DryRun: true}, "monkey (dry run) would have slowed history/2 (pid 7) for 10s, frozen 50% of the time"},
	} {
		if got := chaosMessage("monkey", tc.a, "history/2", 7); got != tc.want {
			t.Errorf("chaosMessage(%+v) = %q, want %q", tc.a, got, tc.want)
		}
	}
}
