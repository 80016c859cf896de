package main

import (
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/shoal-dev/shoal/bench/internal/proc"
)

// authTemplate is the shoal-auth arm's --config (see the file).
//
//go:embed shoal-auth.yaml
var authTemplate string

// startShoal runs one Shoal gateway in front of the replicas, found by
// gossip (seeded with the replicas' gossip addresses). withAuth gives it the
// gateway config of the shoal-auth arm; a tree whose gateway has no
// --config yet makes that arm unavailable.
func (b *bench) startShoal(a *arm, withAuth bool) error {
	args := []string{"gateway"}
	bin := b.shoalBin
	if a.name == armProfiled {
		bin, args = b.profileBin, []string{"-pprof", b.pprofAddr}
	} else if b.shoalErr != nil {
		return b.shoalErr
	}
	if withAuth {
		if a.name != armProfiled { // the harness has -config
			help, _ := exec.Command(b.shoalBin, "gateway", "--help").CombinedOutput()
			if !strings.Contains(string(help), "--config") {
				return fmt.Errorf("shoal gateway has no --config flag in this tree (gateway config not implemented yet)")
			}
		}
		path, header, err := b.writeAuthConfig()
		if err != nil {
			return err
		}
		args = append(args, "--config", path)
		a.header = header
	}
	sock, addr, err := proc.Reserve()
	if err != nil {
		return err
	}
	args = append(args, "--addr", addr, "--gossip-addr", "127.0.0.1:0", "--instance", a.name,
		"--seeds", strings.Join(b.gossip, ","))
	env := append([]string{"SHOAL_ADMISSION=" + b.admission, "SHOAL_DRAIN_TIMEOUT=1s"}, b.gatewayEnv...)
	return a.serve(addr, sock, filepath.Join(b.tmp, a.name+".log"), bin, args, env)
}

// writeAuthConfig renders the shoal-auth arm's config with a fresh random
// API key and returns its path and the header that carries the key.
func (b *bench) writeAuthConfig() (path, header string, err error) {
	text := authTemplate
	if b.authConfig != "" {
		raw, err := os.ReadFile(b.authConfig)
		if err != nil {
			return "", "", err
		}
		text = string(raw)
	}
	key := rand.Text()
	sum := sha256.Sum256([]byte(key))
	conf, err := render(text, map[string]string{"KeySHA256": hex.EncodeToString(sum[:])})
	if err != nil {
		return "", "", fmt.Errorf("auth config: %w", err)
	}
	path = filepath.Join(b.tmp, "shoal-auth.yaml")
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		return "", "", err
	}
	return path, "Authorization: ApiKey " + key, nil
}
