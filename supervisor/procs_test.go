package supervisor

import (
	"os"
	"slices"
	"testing"
)

func TestMaxProcsShare(t *testing.T) {
	for _, tc := range []struct{ cpus, n, want int }{
		{2, 28, 1}, {2, 1, 2}, {16, 6, 2}, {16, 3, 5}, {1, 0, 1}, {8, 0, 8},
	} {
		if got := maxProcsShare(tc.cpus, tc.n); got != tc.want {
			t.Errorf("maxProcsShare(%d CPUs, %d instances) = %d, want %d", tc.cpus, tc.n, got, tc.want)
		}
	}
}

// The manifest's env and shoal up's environment win over the share.
func TestMaxProcsEnvUserWins(t *testing.T) {
	t.Setenv(envMaxProcs, "") // set, even if empty; restored after the test
	own := &service{spec: &ServiceSpec{Env: map[string]string{envMaxProcs: "4"}}}
	plain := &service{spec: &ServiceSpec{}}
	if env := maxProcsEnv(plain, 1); env != nil {
		t.Errorf("with GOMAXPROCS in shoal up's environment: %q, want nothing", env)
	}
	os.Unsetenv(envMaxProcs) // t.Setenv restores it
	if env := maxProcsEnv(own, 1); env != nil {
		t.Errorf("with GOMAXPROCS in the service's env: %q, want nothing", env)
	}
	if env := maxProcsEnv(plain, 1<<20); !slices.Equal(env, []string{"GOMAXPROCS=1"}) {
		t.Errorf("a million instances: %q, want GOMAXPROCS=1", env)
	}
}
