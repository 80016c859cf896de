package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/proc"
	"github.com/shoal-dev/shoal/handoff"
)

// Arms, in the order tables show them.
const (
	armDirect    = "direct"     // no proxy: the load generator calls the replicas
	armShoal     = "shoal"      // shoal gateway, no gateway config
	armShoalAuth = "shoal-auth" // shoal gateway --config: API key + rate limit on the route
	armNginx     = "nginx"      // bench/peers/nginx-gateway.conf
	armHAProxy   = "haproxy"    // bench/peers/haproxy-gateway.cfg
	armCaddy     = "caddy"      // bench/peers/Caddyfile-gateway
	armGoProxy   = "go-proxy"   // ./stdproxy: net/http/httputil.ReverseProxy alone, the floor of a Go gateway
)

var allArms = []string{armDirect, armShoal, armShoalAuth, armNginx, armHAProxy, armCaddy, armGoProxy}

// servicePath is what a client asks a proxy for: /<service>/<path>, the
// Shoal gateway's routing, which every peer config repeats (prefix stripped).
const servicePath = "/echo/work"

// arm is one way of reaching the replicas.
type arm struct {
	name   string
	url    string   // what wrk loads
	urls   []string // what the fixed-rate load spreads over (round robin)
	header string   // sent with every request ("Name: value"), or ""
	procs  []*proc.Proc
	// unavailable says why the arm was not measured (or stopped being):
	// not installable, did not start, failed mid-run.
	unavailable string
}

// serve starts bin with args and env as one of a's processes, its output
// in logFile, serving on addr, whose socket sock holds (proc.Reserve); a's
// load then goes to addr.
func (a *arm) serve(addr string, sock *handoff.Port, logFile, bin string, args, env []string) error {
	p, err := proc.Start(a.name, logFile, bin, args, env, sock)
	if err != nil {
		return err
	}
	a.procs = append(a.procs, p)
	a.url = "http://" + addr + servicePath
	return nil
}

func (a *arm) stop() {
	for _, p := range a.procs {
		p.Kill()
	}
}

// startArm starts what arm name needs in front of the replicas and waits
// until it answers; an error makes the arm unavailable, not the run fail.
func (b *bench) startArm(ctx context.Context, name string) *arm {
	a := &arm{name: name}
	var err error
	switch name {
	case armDirect:
		a.url = "http://" + b.replicas[0] + "/work"
		for _, r := range b.replicas {
			a.urls = append(a.urls, "http://"+r+"/work")
		}
		return a
	case armShoal:
		err = b.startShoal(a, false)
	case armShoalAuth:
		err = b.startShoal(a, true)
	case armNginx, armHAProxy, armCaddy:
		err = b.startPeer(ctx, a)
	case armGoProxy:
		err = b.startGoProxy(a)
	default:
		err = fmt.Errorf("unknown arm (known: %s)", strings.Join(allArms, ", "))
	}
	if err == nil {
		err = waitProxy(ctx, a)
	}
	if err == nil && a.header != "" {
		err = checkRefused(ctx, a)
	}
	if err != nil {
		a.stop()
		a.unavailable = err.Error()
	}
	return a
}

// waitProxy waits until a's proxy answers 200 with the 1 KiB body and has
// reached all 3 replicas, so that no arm is measured while it still
// discovers its upstreams.
func waitProxy(ctx context.Context, a *arm) error {
	a.urls = []string{a.url}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	seen := map[string]bool{}
	err := proc.Poll(ctx, a.name+" to reach all 3 replicas", func() error {
		for _, p := range a.procs {
			select {
			case <-p.Exited():
				return fmt.Errorf("%s exited: %s", p.Name, p.Tail())
			default:
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
		if a.header != "" {
			k, v, _ := strings.Cut(a.header, ":")
			req.Header.Set(k, strings.TrimSpace(v))
		}
		resp, err := proc.Probe.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || len(body) != 1024 {
			return fmt.Errorf("%s, %d bytes: %.200s", resp.Status, len(body), body)
		}
		seen[resp.Header.Get("X-Replica")] = true
		if len(seen) < 3 {
			return fmt.Errorf("replicas seen so far: %d", len(seen))
		}
		return nil
	})
	if err != nil && len(a.procs) > 0 {
		err = fmt.Errorf("%w; log %s:\n%s", err, a.procs[0].Log, a.procs[0].Tail())
	}
	return err
}

// startGoProxy runs ./stdproxy in front of the replicas.
func (b *bench) startGoProxy(a *arm) error {
	bin, err := b.goBuild(b.root, "./bench/gateway/stdproxy", "stdproxy")
	if err != nil {
		return err
	}
	sock, addr, err := proc.Reserve()
	if err != nil {
		return err
	}
	return a.serve(addr, sock, filepath.Join(b.tmp, a.name+".log"), bin,
		[]string{"-addr", addr, "-upstreams", strings.Join(b.replicas, ",")}, nil)
}

// checkRefused verifies that a request without a's header is refused, so
// that the auth arm does measure a gateway that checks keys.
func checkRefused(ctx context.Context, a *arm) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
	resp, err := proc.Probe.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		return fmt.Errorf("a request without the API key got %s, want 401 or 403: is auth configured?", resp.Status)
	}
	return nil
}

// goBuild builds pkg (a path in the module at dir) into the run's folder.
func (b *bench) goBuild(dir, pkg, out string) (string, error) {
	bin := filepath.Join(b.tmp, out)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = dir
	if text, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, text)
	}
	return bin, nil
}

// shoalSource returns the module folder the Shoal binaries are built from:
// the working tree, or with -shoal-rev that revision's files (git archive,
// which leaves the working tree alone), and says which it is.
func (b *bench) shoalSource() (dir, about string, err error) {
	if b.shoalSrc != "" {
		if b.shoalRev != "" {
			return "", "", errors.New("-shoal-src and -shoal-rev: give one")
		}
		dir, err := filepath.Abs(b.shoalSrc)
		return dir, dir, err
	}
	if b.shoalRev == "" {
		out, _ := exec.Command("git", "-C", b.root, "describe", "--always", "--dirty").Output()
		return b.root, "the working tree (" + strings.TrimSpace(string(out)) + ")", nil
	}
	out, err := exec.Command("git", "-C", b.root, "rev-parse", "--short", b.shoalRev+"^{commit}").Output()
	if err != nil {
		return "", "", fmt.Errorf("-shoal-rev %q: %w", b.shoalRev, err)
	}
	rev := strings.TrimSpace(string(out))
	dir = filepath.Join(b.tmp, "src-"+rev)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", "", err
	}
	cmd := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", b.root, rev, dir)
	if text, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("git archive %s: %w\n%s", rev, err, text)
	}
	return dir, "git revision " + rev, nil
}

// moduleRoot returns the folder of this module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run it from inside the shoal module (go run ./bench/gateway)")
	}
	return filepath.Dir(mod), nil
}

// cpuTime is the CPU time of all of a's processes.
func (a *arm) cpuTime() proc.CPU {
	var total proc.CPU
	for _, p := range a.procs {
		total = total.Add(p.CPU())
	}
	return total
}
