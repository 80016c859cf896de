package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/profile"
	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/supervisor"
)

// profileKinds are the profiles profile fetches: the CPU profile over a
// window, the others as net/http/pprof serves them at once; the ones that
// accumulate (deltaKinds) over a window instead when --seconds is given.
var profileKinds = []string{"cpu", "heap", "allocs", "goroutine", "block", "mutex"}

// deltaKinds are the kinds that count since the program started, or
// during --seconds as a delta.
var deltaKinds = []string{"allocs", "block", "mutex"}

// profileWindow is the window --seconds (set says whether it was given)
// gives kind: 0 for a snapshot, taken at once.
func profileWindow(kind string, seconds int, set bool) (time.Duration, error) {
	switch {
	case seconds < 1 || seconds > 600:
		return 0, usagef("profile: --seconds %d: want 1 to 600", seconds)
	case kind == "cpu" || set && slices.Contains(deltaKinds, kind):
		return time.Duration(seconds) * time.Second, nil
	case set:
		return 0, usagef("profile: --seconds: a %s profile is a snapshot, taken at once; --seconds is for cpu, %s", kind, strings.Join(deltaKinds, ", "))
	}
	return 0, nil
}

func newProfile(e env, file *string) *cobra.Command {
	var (
		seconds int
		kind    string
		out     string
		token   bool
		ttl     time.Duration
	)
	c := &cobra.Command{
		Use:   "profile [SERVICE[/INDEX]...] [--seconds N] [--kind cpu|heap|allocs|goroutine|block|mutex] [-o DIR]",
		Short: "Profile running instances (pprof) to see where the CPU or memory goes",
		Long: `profile takes a pprof profile of running SDK instances through their admin
listener (the ADMIN column of shoal ps, /debug/pprof/), all over the same
window, and writes one file per service into DIR: the profiles of that
service's instances merged, so the file answers "where does this service's
CPU go" across every instance. Without arguments it profiles every service;
SERVICE/INDEX takes one instance only.

--kind cpu (the default) samples the CPU for --seconds; heap and goroutine
are snapshots, taken at once; allocs, block and mutex are what accumulated
since the program started, or with --seconds during that window. Programs
that do not use the SDK (command: services without an admin listener) are
skipped with a note.

An instance serves its profiles only to the operator: each request bears a
token for its service, signed with the operator's key (.shoal/chaos.key,
which shoal up makes) and valid for the window and 90 s more.
--token prints such a token for each SERVICE instead, valid --for, to
profile an instance shoal up does not run (in Kubernetes, give its pods
the operator's public key as SHOAL_FAULT_KEY):

  shoal profile --token catalog | sed 's/^/Authorization: Bearer /' |
    curl -H @- -o catalog.pb.gz 'http://ADMIN/debug/pprof/profile?seconds=30'

(a header from standard input keeps the token out of the process list).
A profile may not outlast its token: a longer ?seconds= is refused.

Read the files with go tool pprof, e.g. -top for the hottest functions or
-http=:0 for a browser view.`,
		Example: `  shoal profile                      # every service, 30 s of CPU, into ./profiles
  shoal profile catalog ratings --seconds 10
  shoal profile api/1 --kind heap -o /tmp/prof
  go tool pprof -top profiles/catalog.cpu.pb.gz`,
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(profileKinds, kind) {
				return usagef("profile: --kind %q: use one of %s", kind, strings.Join(profileKinds, ", "))
			}
			window, err := profileWindow(kind, seconds, c.Flags().Changed("seconds"))
			if err != nil {
				return err
			}
			if token {
				return printProfileTokens(e.stdout, *file, args, ttl)
			}
			type want struct {
				service string
				index   int
			}
			var wants []want
			for _, a := range args {
				s, i, err := parseTarget("profile", a)
				if err != nil {
					return err
				}
				wants = append(wants, want{s, i})
			}
			r, err := remote("profile", *file)
			if err != nil {
				return err
			}
			st, err := r.PS(c.Context())
			if err != nil {
				return controlError("profile", *file, err)
			}
			var chosen []supervisor.InstanceStatus
			for _, w := range wants {
				n := len(chosen)
				for _, s := range st {
					if s.Service == w.service && (w.index < 0 || s.Index == w.index) {
						chosen = append(chosen, s)
					}
				}
				if len(chosen) == n {
					return fmt.Errorf("profile: %s: no such instance in the running system (see shoal ps)", targetName(w.service, w.index))
				}
			}
			if len(wants) == 0 {
				chosen = st
			}
			op, err := operatorSigner(*file)
			if err != nil {
				return err
			}
			ctx, stop := signalContext(c.Context())
			defer stop()
			return profileInstances(ctx, e.stdout, chosen, kind, window, out, op)
		},
	}
	addFileFlag(c, file, true)
	c.Flags().IntVar(&seconds, "seconds", 30, "length of the profiling window in `N` seconds: of cpu, or of allocs, block and mutex for a delta")
	c.Flags().StringVar(&kind, "kind", "cpu", "`KIND` of profile: "+strings.Join(profileKinds, ", "))
	c.Flags().StringVarP(&out, "output", "o", "profiles", "`DIR` to write SERVICE.KIND.pb.gz into")
	c.Flags().BoolVar(&token, "token", false, "print a profile token for each SERVICE instead of profiling")
	c.Flags().DurationVar(&ttl, "for", 10*time.Minute, "with --token: how long the token is honoured (at most 24h)")
	return c
}

// operatorSigner signs with the operator's key of the system whose manifest
// is file.
func operatorSigner(file string) (*chaos.Signer, error) {
	dir := filepath.Dir(manifestFile(file))
	key, err := chaos.LoadKey(supervisor.OperatorKeyFile(dir))
	if err != nil {
		return nil, fmt.Errorf("profile: the operator's key signs the profile tokens instances ask for: %w (shoal up makes it in %s)", err, filepath.Join(dir, ".shoal"))
	}
	return chaos.NewSigner(key), nil
}

// printProfileTokens writes a profile token, valid for ttl, for each of
// services, one a line.
func printProfileTokens(w io.Writer, file string, services []string, ttl time.Duration) error {
	if len(services) == 0 {
		return usagef("profile --token: name the SERVICE each token is for")
	}
	for _, a := range services {
		if s, i, err := parseTarget("profile", a); err != nil {
			return err
		} else if i >= 0 {
			return usagef("profile --token: %q: a token is for a service, every instance of it: name %s", a, s)
		}
	}
	op, err := operatorSigner(file)
	if err != nil {
		return err
	}
	for _, s := range services {
		tok, err := op.Profile(s, ttl)
		if err != nil {
			return usageError{fmt.Errorf("profile --token: %w", err)}
		}
		fmt.Fprintln(w, tok)
	}
	return nil
}

// targetName is SERVICE or SERVICE/INDEX (index -1: none).
func targetName(service string, index int) string {
	if index < 0 {
		return service
	}
	return service + "/" + strconv.Itoa(index)
}

// profileInstances profiles every instance of st with an admin listener over
// the same window and writes, per service, the merge of its instances'
// profiles to dir/SERVICE.KIND.pb.gz, reporting each file (and each
// instance skipped or failed) on w. Each request bears a profile token
// for its service signed by op, valid for the window and the fetch's
// margin. A window of 0 takes a snapshot. It fails only if no profile was
// taken.
func profileInstances(ctx context.Context, w io.Writer, st []supervisor.InstanceStatus, kind string, window time.Duration, dir string, op *chaos.Signer) error {
	var targets []supervisor.InstanceStatus
	for _, s := range st {
		switch {
		case s.Admin == "":
			fmt.Fprintf(w, "%s/%d: skipped: no admin listener (not an SDK program)\n", s.Service, s.Index)
		case s.State != "serving":
			fmt.Fprintf(w, "%s/%d: skipped: %s\n", s.Service, s.Index, s.State)
		default:
			targets = append(targets, s)
		}
	}
	if len(targets) == 0 {
		return fmt.Errorf("profile: no serving SDK instance to profile")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if window > 0 {
		fmt.Fprintf(w, "profiling %d instance(s) for %v (%s)...\n", len(targets), window, kind)
	} else {
		fmt.Fprintf(w, "profiling %d instance(s) (%s, now)...\n", len(targets), kind)
	}
	profs := make([]*profile.Profile, len(targets))
	errs := make([]error, len(targets))
	tokens := map[string]string{}
	for _, s := range targets {
		if tokens[s.Service] != "" {
			continue
		}
		tok, err := op.Profile(s.Service, window+fetchMargin+time.Minute)
		if err != nil {
			return fmt.Errorf("profile: %w", err)
		}
		tokens[s.Service] = tok
	}
	var wg sync.WaitGroup
	for i, s := range targets {
		wg.Go(func() { profs[i], errs[i] = fetchProfile(ctx, s.Admin, tokens[s.Service], kind, window) })
	}
	wg.Wait()
	byService := map[string][]*profile.Profile{}
	var services []string
	for i, s := range targets {
		if errs[i] != nil {
			fmt.Fprintf(w, "%s/%d: %v\n", s.Service, s.Index, errs[i])
			continue
		}
		if byService[s.Service] == nil {
			services = append(services, s.Service)
		}
		byService[s.Service] = append(byService[s.Service], profs[i])
	}
	if len(services) == 0 {
		return fmt.Errorf("profile: every instance failed (see above)")
	}
	for _, svc := range services {
		p, err := profile.Merge(byService[svc])
		if err != nil {
			return fmt.Errorf("profile: merging %s's profiles: %w", svc, err)
		}
		// The instances were profiled over the same window: Merge adds
		// their durations, which would make five instances' 5 s read as
		// 25 s, and pprof's share of samples a fifth of the cores used.
		p.DurationNanos = 0
		for _, one := range byService[svc] {
			p.DurationNanos = max(p.DurationNanos, one.DurationNanos)
		}
		path := filepath.Join(dir, svc+"."+kind+".pb.gz")
		if err := writeProfile(path, p); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
		fmt.Fprintf(w, "%s: %d instance(s) -> %s\n", svc, len(byService[svc]), path)
	}
	fmt.Fprintf(w, "read one with: go tool pprof -top %s\n", filepath.Join(dir, services[0]+"."+kind+".pb.gz"))
	return nil
}

// fetchMargin is how long, past the window, an instance has to write its
// profile: a loaded one is slow to.
const fetchMargin = 30 * time.Second

// fetchProfile takes one profile of kind from the admin listener at admin,
// bearing token: over window, or a snapshot if it is 0.
func fetchProfile(ctx context.Context, admin, token, kind string, window time.Duration) (*profile.Profile, error) {
	url := "http://" + admin + "/debug/pprof/"
	if kind == "cpu" {
		url += "profile"
	} else {
		url += kind
	}
	if window > 0 {
		url += "?seconds=" + strconv.Itoa(int(window/time.Second))
	}
	ctx, cancel := context.WithTimeout(ctx, window+fetchMargin)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	p, err := profile.Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: not a profile: %w", url, err)
	}
	return p, nil
}

// writeProfile writes p to path through a temporary file, so an
// interrupted run leaves no half-written profile.
func writeProfile(path string, p *profile.Profile) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".profile-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := p.Write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
