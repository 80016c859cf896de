package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"text/template"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/proc"
	"github.com/shoal-dev/shoal/handoff"
)

// nginxConf is what the checked-in template bench/peers/nginx-scenario.conf
// is rendered with.
type nginxConf struct {
	Prefix    string   // nginx's -p folder: pid, logs, temp files
	Listen    string   // 127.0.0.1:port
	Upstreams []string // replicas' host:port
}

// renderNginx renders the template text with c.
func renderNginx(text string, c nginxConf) ([]byte, error) {
	t, err := template.New("nginx").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("nginx template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("nginx template: %w", err)
	}
	return b.Bytes(), nil
}

// ensureNginx installs Debian's nginx when none is on PATH. The bench
// command does this; CI and tests never run it.
func ensureNginx() (string, error) {
	if path, err := exec.LookPath("nginx"); err == nil {
		return path, nil
	}
	fmt.Fprintln(os.Stderr, "scenario: nginx missing: apt-get update && apt-get install -y nginx")
	cmd := exec.Command("sh", "-c", "apt-get update && apt-get install -y nginx")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("installing nginx: %w", err)
	}
	return exec.LookPath("nginx")
}

// startNginx runs nginx in the foreground in front of upstreams on a
// reserved loopback port (nginx binds it with SO_REUSEADDR), and waits
// until it proxies a request to a replica (which answers /ready 404: its
// readiness is on its admin listener, which nginx does not reach). It
// returns the process and its address.
func (b *bench) startNginx(ctx context.Context, upstreams []string) (*proc.Proc, string, error) {
	sock, err := handoff.Reserve("127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	listen := sock.Addr().String()
	prefix, err := os.MkdirTemp(b.tmp, "nginx-")
	if err != nil {
		sock.Close()
		return nil, "", err
	}
	conf, err := renderNginx(b.nginxTemplate, nginxConf{Prefix: prefix, Listen: listen, Upstreams: upstreams})
	if err != nil {
		sock.Close()
		return nil, "", err
	}
	path := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		sock.Close()
		return nil, "", err
	}
	p, err := proc.Start("nginx", filepath.Join(prefix, "stderr.log"), b.nginxBin,
		[]string{"-p", prefix, "-e", filepath.Join(prefix, "error.log"), "-c", path, "-g", "daemon off;"}, nil, sock)
	if err != nil {
		return nil, "", err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = proc.Poll(wctx, "nginx to proxy", func() error {
		resp, err := proc.Probe.Get("http://" + listen + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Request-Id") == "" {
			return fmt.Errorf("%s, want the replica's 404", resp.Status)
		}
		return nil
	})
	if err != nil {
		p.Kill()
		return nil, "", fmt.Errorf("nginx (logs in %s): %w", prefix, err)
	}
	return p, listen, nil
}
