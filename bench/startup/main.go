// Command startup measures the reference system's footprint: for each
// service the manifest builds, the binary's size, the time from exec to a
// ready /readyz, and the idle RSS once ready; and the time `shoal up` takes
// from start to every instance serving, with a cold and a warm build cache.
//
//	go run ./bench/startup [-f shoal.yaml] [-runs 10] [-up=true]
//
// Run it from the repository root; it writes only to temporary folders.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/supervisor"
)

func main() {
	file := flag.String("f", "shoal.yaml", "manifest")
	runs := flag.Int("runs", 10, "starts per service (the median is reported)")
	up := flag.Bool("up", true, "also time shoal up, cold and warm build cache")
	flag.Parse()
	if err := run(*file, *runs, *up); err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
}

func run(file string, runs int, up bool) error {
	m, err := supervisor.Load(file)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "shoal-startup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	fmt.Println("| service | binary | exec → ready (median) | idle RSS (median) |")
	fmt.Println("|---|---|---|---|")
	for _, svc := range m.Services {
		if svc.Build == "" {
			continue
		}
		bin := filepath.Join(tmp, svc.Name)
		// The supervisor's build flags, so sizes are what shoal up runs.
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, svc.Build)
		build.Dir, build.Stderr = m.Dir, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build %s: %w", svc.Name, err)
		}
		st, err := os.Stat(bin)
		if err != nil {
			return err
		}
		var ready []time.Duration
		var rss []int
		for range runs {
			d, kb, err := startOnce(bin, svc, filepath.Join(tmp, "data"))
			if err != nil {
				return fmt.Errorf("%s: %w", svc.Name, err)
			}
			ready, rss = append(ready, d), append(rss, kb)
		}
		fmt.Printf("| %s | %.1f MB | %v | %.1f MB |\n", svc.Name, float64(st.Size())/1e6,
			median(ready).Round(100*time.Microsecond), float64(median(rss))/1024)
	}
	if !up {
		return nil
	}
	fmt.Println()
	fmt.Println("| shoal up, every instance serving | time |")
	fmt.Println("|---|---|")
	cold, err := os.MkdirTemp("", "shoal-gocache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cold)
	for _, c := range []struct{ name, cache string }{{"cold build cache", cold}, {"warm build cache", ""}} {
		d, err := timeUp(m, tmp, c.cache)
		if err != nil {
			return fmt.Errorf("shoal up (%s): %w", c.name, err)
		}
		fmt.Printf("| %s | %v |\n", c.name, d.Round(100*time.Millisecond))
	}
	return nil
}

// startOnce starts bin as one instance, polls /readyz every 200 µs, and
// reads the process's RSS after a second of idling.
func startOnce(bin string, svc *supervisor.ServiceSpec, dataDir string) (time.Duration, int, error) {
	port, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(bin, svc.Args...)
	cmd.Env = append(os.Environ(), "SHOAL_NAME="+svc.Name, "SHOAL_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"PORT="+strconv.Itoa(port), "SHOAL_GOSSIP_ADDR=127.0.0.1:0", "SHOAL_DATA_DIR="+dataDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	c := &http.Client{Timeout: time.Second}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	for {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(begin) > 10*time.Second {
			return 0, 0, fmt.Errorf("not ready after 10s")
		}
		time.Sleep(200 * time.Microsecond)
	}
	took := time.Since(begin)
	time.Sleep(time.Second) // idle: what it holds when nothing happens
	kb, err := rssKB(cmd.Process.Pid)
	return took, kb, err
}

// timeUp runs shoal up on a copy of m's manifest (gateway on free ports)
// and returns the time until ps shows every instance serving.
func timeUp(m *supervisor.Manifest, tmp, gocache string) (time.Duration, error) {
	shoal := filepath.Join(tmp, "shoal")
	build := exec.Command("go", "build", "-o", shoal, "./cmd/shoal")
	build.Dir, build.Stderr = m.Dir, os.Stderr
	if err := build.Run(); err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp(m.Dir, ".bench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	text, err := os.ReadFile(m.Path)
	if err != nil {
		return 0, err
	}
	manifest := strings.NewReplacer("build: ./", "build: ../", " examples/", " ../examples/").Replace(string(text))
	for _, p := range []string{"8080", "8081"} {
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		manifest = strings.ReplaceAll(manifest, p, strconv.Itoa(port))
	}
	path := filepath.Join(dir, "shoal.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		return 0, err
	}
	total := 0
	for _, s := range m.Services {
		total += s.Instances
	}
	cmd := exec.Command(shoal, "up", "-f", path)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	if gocache != "" {
		cmd.Env = append(cmd.Env, "GOCACHE="+gocache)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		if r, err := supervisor.FindRunning(dir); err == nil {
			if list, err := r.PS(ctx); err == nil && countServing(list) == total {
				return time.Since(begin), nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("not all %d instances serving after 10 minutes", total)
}

func countServing(list []supervisor.InstanceStatus) int {
	n := 0
	for _, s := range list {
		if s.State == supervisor.StateServing {
			n++
		}
	}
	return n
}

func rssKB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func median[T int | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
