package deploy

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Release names what is deployed: it becomes the images' tag and labels
// and the pods' image references and SHOAL_VERSION. Images built from the
// same sources with the same Release are the same, byte for byte.
type Release struct {
	// Version is the images' tag and the instances' SHOAL_VERSION, e.g.
	// v1.4.0 or 3f2c1ab-dirty.
	Version string
	// Revision is the source revision (a git commit; "-dirty" when the
	// work tree has changes), the org.opencontainers.image.revision label.
	Revision string
	// Source is the URL of the source repository, without credentials;
	// the org.opencontainers.image.source label. Empty: no label.
	Source string
	// Created is the time every image claims and every file in the images
	// carries: SOURCE_DATE_EPOCH, else the commit's time, else the Unix
	// epoch; never the time of the build, or no two builds would match.
	Created time.Time
}

// EnvSourceDateEpoch fixes Release.Created (reproducible-builds.org).
const EnvSourceDateEpoch = "SOURCE_DATE_EPOCH"

// validTag reports whether a registry accepts v as a tag:
// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func validTag(v string) bool {
	if v == "" || len(v) > 128 || v[0] == '.' || v[0] == '-' {
		return false
	}
	for _, c := range []byte(v) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// ReadRelease describes the sources in dir from git (any of it may be
// missing: a folder outside git gives version "dev" and no revision) and
// SOURCE_DATE_EPOCH, read with getenv.
func ReadRelease(ctx context.Context, dir string, getenv func(string) string) (Release, error) {
	r := Release{Version: "dev", Created: time.Unix(0, 0).UTC()}
	if sha, err := git(ctx, dir, "rev-parse", "HEAD"); err == nil {
		r.Revision = sha
		if st, err := git(ctx, dir, "status", "--porcelain"); err == nil && st != "" {
			r.Revision += "-dirty"
		}
		if v, err := git(ctx, dir, "describe", "--tags", "--always", "--dirty"); err == nil && validTag(v) {
			r.Version = v
		}
		if ct, err := git(ctx, dir, "log", "-1", "--format=%ct"); err == nil {
			if sec, err := strconv.ParseInt(ct, 10, 64); err == nil {
				r.Created = time.Unix(sec, 0).UTC()
			}
		}
		if u, err := git(ctx, dir, "remote", "get-url", "origin"); err == nil {
			r.Source = publicURL(u)
		}
	}
	if v := getenv(EnvSourceDateEpoch); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec < 0 {
			return r, fmt.Errorf("deploy: %s=%q: want seconds since 1970", EnvSourceDateEpoch, v)
		}
		r.Created = time.Unix(sec, 0).UTC()
	}
	return r, nil
}

// Check reports a Release that cannot tag an image.
func (r Release) Check() error {
	if !validTag(r.Version) {
		return fmt.Errorf("deploy: version %q cannot be an image tag: use letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')", r.Version)
	}
	return nil
}

// git runs git in dir and returns its output, trimmed.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(string(out)), nil
}

// publicURL is a remote's URL fit for a label: https for scp-like
// git@host:path remotes, and never a user name or token.
func publicURL(remote string) string {
	if u, err := url.Parse(remote); err == nil && u.Scheme != "" && u.Host != "" {
		u.User = nil
		if u.Scheme == "ssh" || u.Scheme == "git" {
			u.Scheme = "https"
		}
		return strings.TrimSuffix(u.String(), ".git")
	}
	if at := strings.Index(remote, "@"); at >= 0 {
		if host, path, ok := strings.Cut(remote[at+1:], ":"); ok && host != "" {
			return "https://" + host + "/" + strings.TrimSuffix(path, ".git")
		}
	}
	return "" // a local path: nothing to link to
}
