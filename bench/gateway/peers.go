package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/shoal-dev/shoal/bench/internal/proc"
)

// peerConf is what the checked-in templates under bench/peers/ are rendered
// with.
type peerConf struct {
	Prefix    string   // a temporary folder for the peer's pid, logs, temp files
	Listen    string   // 127.0.0.1:port
	Port      string   // the port alone
	Upstreams []string // the replicas' host:port
}

// peerFiles are the templates, by arm.
var peerFiles = map[string]string{
	armNginx:   "nginx-gateway.conf",
	armHAProxy: "haproxy-gateway.cfg",
	armCaddy:   "Caddyfile-gateway",
}

// packages are the Debian packages of the commands the run needs.
var packages = map[string]string{"wrk": "wrk", armNginx: "nginx", armHAProxy: "haproxy", armCaddy: "caddy"}

// install runs apt-get update, then apt-get install -y for each command
// missing from PATH, one package at a time so that one that cannot be
// installed does not keep the others out. Never in CI: only this command,
// run by hand, does it.
func install(cmds []string) {
	var missing []string
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "gateway bench: installing %s from Debian packages\n", strings.Join(missing, ", "))
	if err := apt("update"); err != nil {
		fmt.Fprintln(os.Stderr, "gateway bench: apt-get update:", err)
	}
	for _, c := range missing {
		if err := apt("install", "-y", "--no-install-recommends", packages[c]); err != nil {
			fmt.Fprintf(os.Stderr, "gateway bench: apt-get install %s: %v\n", packages[c], err)
		}
	}
}

func apt(args ...string) error {
	cmd := exec.Command("apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// startPeer renders a's template into a folder of its own and starts the
// peer in the foreground.
func (b *bench) startPeer(ctx context.Context, a *arm) error {
	bin, err := exec.LookPath(a.name)
	if err != nil {
		return fmt.Errorf("not installed (apt-get install %s failed?): %w", packages[a.name], err)
	}
	sock, listen, err := proc.Reserve()
	if err != nil {
		return err
	}
	prefix, err := os.MkdirTemp(b.tmp, a.name+"-")
	if err != nil {
		sock.Close()
		return err
	}
	c := peerConf{Prefix: prefix, Listen: listen, Port: listen[strings.LastIndex(listen, ":")+1:], Upstreams: b.replicas}
	text, err := os.ReadFile(filepath.Join(b.root, "bench", "peers", peerFiles[a.name]))
	if err != nil {
		sock.Close()
		return err
	}
	conf, err := render(string(text), c)
	if err != nil {
		sock.Close()
		return fmt.Errorf("%s: %w", peerFiles[a.name], err)
	}
	path := filepath.Join(prefix, peerFiles[a.name])
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		sock.Close()
		return err
	}
	var args, env []string
	switch a.name {
	case armNginx:
		args = []string{"-p", prefix, "-e", filepath.Join(prefix, "error.log"), "-c", path, "-g", "daemon off;"}
	case armHAProxy:
		args = []string{"-db", "-f", path}
	case armCaddy:
		args = []string{"run", "--adapter", "caddyfile", "--config", path}
		env = []string{"XDG_DATA_HOME=" + prefix, "XDG_CONFIG_HOME=" + prefix, "HOME=" + prefix}
	}
	return a.serve(listen, sock, filepath.Join(prefix, "stderr.log"), bin, args, env)
}

// render fills a template under bench/peers/ (Go text/template).
func render(text string, data any) ([]byte, error) {
	t, err := template.New("peer").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
