package supervisor

import (
	"os"
	"runtime"
	"strconv"
)

// Each instance gets a fair share of the host's CPUs as GOMAXPROCS, unless
// shoal up's environment or the service's env sets it. Go gives every
// process all of the CPUs by default; a host running dozens of instances
// then has dozens of schedulers spinning for work and waking each other
// over the same few cores. Measured on flix (28 instances, 2 CPUs) under
// bench/startup at C = 16: 0.90× the CPU per journey with 1 than with 2
// (docs/BENCHMARKS.md, "GOMAXPROCS of the instances, kept").
const envMaxProcs = "GOMAXPROCS"

// maxProcsShare is the GOMAXPROCS of each of n instances sharing cpus: an
// equal share, at least 1.
func maxProcsShare(cpus, n int) int { return max(1, cpus/max(n, 1)) }

// maxProcsEnv is the GOMAXPROCS entry of svc's instances' environment, or
// nil if the user set it. instances is how many this supervisor runs, as
// the manifest says (scaling later does not change it).
func maxProcsEnv(svc *service, instances int) []string {
	if _, set := os.LookupEnv(envMaxProcs); set {
		return nil
	}
	if _, set := svc.spec.Env[envMaxProcs]; set {
		return nil
	}
	return []string{envMaxProcs + "=" + strconv.Itoa(maxProcsShare(runtime.GOMAXPROCS(0), instances))}
}
