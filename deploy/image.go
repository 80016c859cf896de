package deploy

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/supervisor"
)

// DefaultPlatform is the platform images are built for unless told: what
// most clusters run, whatever machine builds them.
const DefaultPlatform = "linux/amd64"

// agentPackage is the shoal command, whose agent runs the programs of
// command: services in their pods.
const agentPackage = "github.com/shoal-dev/shoal/cmd/shoal"

// ImageOptions says what BuildImages builds.
type ImageOptions struct {
	// Services to build, by name; empty means every service.
	Services []string
	// Platform is os/arch (linux/amd64, linux/arm64); default
	// DefaultPlatform.
	Platform string
	// Registry prefixes the image references (e.g. ghcr.io/acme): see
	// ImageRef.
	Registry string
	// Release is the tag, labels and time of the images.
	Release Release
	// Bases gives the base image of each command: service, which must hold
	// the program's runtime (python3 for flix's trailers): the path of an
	// OCI image layout (a folder) or of a docker-archive tarball (a file),
	// e.g. from `crane pull python:3.13-slim python.tar`.
	Bases map[string]string
	// Progress, if not nil, receives a line per step.
	Progress io.Writer
}

// Image is one built image: read it with go-containerregistry, write it
// with WriteLayout or WriteTarball.
type Image struct {
	Service string
	// Ref is the reference it is tagged with (ImageRef).
	Ref   string
	Image v1.Image
}

// ImageRef is the reference of service's image: [registry/]system-service:version.
// shoal export kubernetes writes the same references into the pods.
func ImageRef(registry, system, service, version string) string {
	ref := manifest.SystemName(system) + "-" + service + ":" + version
	if registry != "" {
		ref = strings.TrimSuffix(registry, "/") + "/" + ref
	}
	return ref
}

// BuildImages builds an OCI image per selected service of m, without a
// container daemon: the Go packages (build:) are compiled statically
// (CGO_ENABLED=0, the supervisor's release flags) for the platform and
// laid on a base that holds only a non-root user, CA certificates and a
// few folders (no shell); a command: service's program files and the
// shoal binary (its agent) are laid on the base image given in Bases.
// The same sources and Release give the same image digests.
func BuildImages(ctx context.Context, m *manifest.Manifest, opts ImageOptions) ([]Image, error) {
	if err := opts.Release.Check(); err != nil {
		return nil, err
	}
	plat, err := parsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	svcs, err := selectServices(m, opts.Services)
	if err != nil {
		return nil, err
	}
	for _, s := range svcs {
		if s.Build == "" && opts.Bases[s.Name] == "" {
			return nil, fmt.Errorf("deploy: %s is a command: service: its image is a base image that holds its runtime (%s) with its program and the shoal agent added; give the base with --base %s=PATH, an OCI layout folder or a docker-archive file (e.g. from `crane pull IMAGE base.tar`), or leave %s out",
				s.Name, s.Command[0], s.Name, s.Name)
		}
	}
	for name := range opts.Bases {
		if !slices.ContainsFunc(svcs, func(s *manifest.Service) bool { return s.Name == name && s.Build == "" }) {
			return nil, fmt.Errorf("deploy: --base %s: not a command: service being built; a base is for the services that run a program of their own", name)
		}
	}

	tmp, err := os.MkdirTemp("", "shoal-image-")
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	defer os.RemoveAll(tmp)
	b := &builder{m: m, opts: opts, plat: plat, tmp: tmp, bins: map[string]string{}}
	var out []Image
	for _, s := range svcs {
		img, err := b.image(ctx, s)
		if err != nil {
			return nil, err
		}
		out = append(out, Image{Service: s.Name, Ref: ImageRef(opts.Registry, m.Name, s.Name, opts.Release.Version), Image: img})
	}
	return out, nil
}

// selectServices returns the services of m named in names (all if none),
// in manifest order.
func selectServices(m *manifest.Manifest, names []string) ([]*manifest.Service, error) {
	if len(names) == 0 {
		return m.Services, nil
	}
	var out []*manifest.Service
	for _, s := range m.Services {
		if slices.Contains(names, s.Name) {
			out = append(out, s)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(out, func(s *manifest.Service) bool { return s.Name == n }) {
			known := make([]string, len(m.Services))
			for i, s := range m.Services {
				known[i] = s.Name
			}
			return nil, fmt.Errorf("deploy: no service %q in %s; its services are %s", n, m.Path, strings.Join(known, ", "))
		}
	}
	return out, nil
}

func parsePlatform(p string) (v1.Platform, error) {
	if p == "" {
		p = DefaultPlatform
	}
	os, arch, ok := strings.Cut(p, "/")
	if !ok || os != "linux" || arch == "" || strings.Contains(arch, "/") {
		return v1.Platform{}, fmt.Errorf("deploy: platform %q: want linux/ARCH, e.g. linux/amd64 or linux/arm64", p)
	}
	return v1.Platform{OS: os, Architecture: arch}, nil
}

// builder builds the images of one BuildImages call, each Go package once.
type builder struct {
	m    *manifest.Manifest
	opts ImageOptions
	plat v1.Platform
	tmp  string
	bins map[string]string // Go package → built binary
}

// binary builds pkg (relative to the manifest's folder) for the platform,
// once, and returns the binary's path.
func (b *builder) binary(ctx context.Context, pkg string) (string, error) {
	key := importPath(b.m.Dir, pkg) // ./cmd/shoal and the agent's package are one build in this repository
	if bin, ok := b.bins[key]; ok {
		return bin, nil
	}
	bin := filepath.Join(b.tmp, strconv.Itoa(len(b.bins)))
	b.progress("building %s for %s/%s", pkg, b.plat.OS, b.plat.Architecture)
	if err := supervisor.GoBuild(ctx, b.m.Dir, pkg, bin, "CGO_ENABLED=0", "GOOS="+b.plat.OS, "GOARCH="+b.plat.Architecture); err != nil {
		return "", fmt.Errorf("deploy: %w", err)
	}
	b.bins[key] = bin
	return bin, nil
}

// importPath is the import path of the Go package pkg as named from dir: a
// relative path (./cmd/web) is joined to the path of the module whose
// go.mod is in dir or above it; anything else is returned as it is.
func importPath(dir, pkg string) string {
	if pkg != "." && pkg != ".." && !strings.HasPrefix(pkg, "./") && !strings.HasPrefix(pkg, "../") {
		return pkg
	}
	target := filepath.Join(dir, filepath.FromSlash(pkg))
	for mod := dir; ; mod = filepath.Dir(mod) {
		data, err := os.ReadFile(filepath.Join(mod, "go.mod"))
		if err == nil {
			rel, err := filepath.Rel(mod, target)
			path := modulePath(data)
			if err != nil || path == "" || strings.HasPrefix(rel, "..") {
				return pkg
			}
			if rel == "." {
				return path
			}
			return path + "/" + filepath.ToSlash(rel)
		}
		if filepath.Dir(mod) == mod {
			return pkg
		}
	}
}

// modulePath reads the module line of a go.mod file.
func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			rest, _, _ = strings.Cut(rest, "//")
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

func (b *builder) progress(format string, args ...any) {
	if b.opts.Progress != nil {
		fmt.Fprintf(b.opts.Progress, format+"\n", args...)
	}
}

// image builds the image of s.
func (b *builder) image(ctx context.Context, s *manifest.Service) (v1.Image, error) {
	entry, args, err := containerCommand(b.m, s)
	if err != nil {
		return nil, err
	}
	var base v1.Image
	layerType := types.OCILayer
	if s.Build == "" {
		if base, err = readBase(b.opts.Bases[s.Name], b.plat); err != nil {
			return nil, fmt.Errorf("deploy: %s: base image %s: %w", s.Name, b.opts.Bases[s.Name], err)
		}
		if mt, err := base.MediaType(); err == nil && mt == types.DockerManifestSchema2 {
			layerType = types.DockerLayer // one manifest, one family of media types
		}
	}
	app := newLayer()
	if s.Build != "" {
		bin, err := b.binary(ctx, s.Build)
		if err != nil {
			return nil, err
		}
		if err := addFile(app, path.Join(BinDir, binaryName(s)), bin); err != nil {
			return nil, err
		}
	}
	if s.Register == manifest.RegisterSupervisor {
		bin, err := b.binary(ctx, agentPackage)
		if err != nil {
			return nil, fmt.Errorf("%w\n(a service with register: supervisor runs under the shoal agent, built from %s: the module of %s must require github.com/shoal-dev/shoal)", err, agentPackage, b.m.Path)
		}
		if err := addFile(app, path.Join(BinDir, "shoal"), bin); err != nil {
			return nil, err
		}
	}
	for _, f := range programFiles(b.m, s) {
		src := filepath.Join(b.m.Dir, filepath.FromSlash(f))
		if dir := path.Dir(f); dir != "." {
			// The program's folder, for the modules it imports and the
			// files it reads beside itself.
			if err := app.copyTree(path.Join(AppDir, dir), filepath.Dir(src)); err != nil {
				return nil, fmt.Errorf("deploy: %s: %w", s.Name, err)
			}
			continue
		}
		if err := addFile(app, path.Join(AppDir, f), src); err != nil {
			return nil, err
		}
	}

	var layers []mutate.Addendum
	if s.Build != "" {
		base = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		bl, err := baseLayer().layer(b.opts.Release.Created, layerType)
		if err != nil {
			return nil, err
		}
		layers = append(layers, mutate.Addendum{Layer: bl, MediaType: layerType, History: b.history("shoal image: base (non-root user, CA certificates, no shell)")})
	}
	al, err := app.layer(b.opts.Release.Created, layerType)
	if err != nil {
		return nil, err
	}
	layers = append(layers, mutate.Addendum{Layer: al, MediaType: layerType, History: b.history("shoal image: " + s.Name)})
	img, err := mutate.Append(base, layers...)
	if err != nil {
		return nil, fmt.Errorf("deploy: %s: %w", s.Name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("deploy: %s: %w", s.Name, err)
	}
	cf = cf.DeepCopy()
	b.configure(cf, s, entry, args)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("deploy: %s: %w", s.Name, err)
	}
	return img, nil
}

func (b *builder) history(what string) v1.History {
	return v1.History{Created: v1.Time{Time: b.opts.Release.Created}, CreatedBy: what}
}

// configure sets what the image runs, as whom, and its labels; a base
// image's environment (its PATH) is kept.
func (b *builder) configure(cf *v1.ConfigFile, s *manifest.Service, entry, args []string) {
	r := b.opts.Release
	cf.OS, cf.Architecture, cf.Variant = b.plat.OS, b.plat.Architecture, b.plat.Variant
	cf.Created = v1.Time{Time: r.Created}
	c := &cf.Config
	c.User = strconv.Itoa(UID) + ":" + strconv.Itoa(UID)
	c.WorkingDir = WorkDir
	c.Entrypoint, c.Cmd = entry, args
	c.Shell, c.Healthcheck, c.OnBuild = nil, nil, nil
	if len(c.Env) == 0 {
		c.Env = []string{"PATH=" + BinDir}
	}
	if c.ExposedPorts == nil {
		c.ExposedPorts = map[string]struct{}{}
	}
	for _, p := range []string{strconv.Itoa(HTTPPort) + "/tcp", strconv.Itoa(AdminPort) + "/tcp", strconv.Itoa(GossipPort) + "/tcp", strconv.Itoa(GossipPort) + "/udp"} {
		c.ExposedPorts[p] = struct{}{}
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for k, v := range imageLabels(b.m, s, r) {
		c.Labels[k] = v
	}
}

// imageLabels are the OCI annotations of an image's config.
func imageLabels(m *manifest.Manifest, s *manifest.Service, r Release) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":   manifest.SystemName(m.Name) + "-" + s.Name,
		"org.opencontainers.image.version": r.Version,
		"org.opencontainers.image.created": r.Created.UTC().Format("2006-01-02T15:04:05Z"),
	}
	if r.Revision != "" {
		l["org.opencontainers.image.revision"] = r.Revision
	}
	if r.Source != "" {
		l["org.opencontainers.image.source"] = r.Source
	}
	return l
}

// addFile adds the file at src to l as p.
func addFile(l *layerFiles, p, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("deploy: %s is not a regular file", src)
	}
	l.copyFile(p, src, fi)
	return nil
}

// binaryName is the name of a build: service's binary in BinDir: its
// package's last element (shoal for ./cmd/shoal), as go build names it.
func binaryName(s *manifest.Service) string {
	b := path.Base(filepath.ToSlash(s.Build))
	if b == "." || b == "/" || b == ".." {
		return s.Name
	}
	return b
}

// containerCommand is how the container of s starts: the image's
// entrypoint and its default arguments (which pods set again, from the
// manifest, as args). A service the supervisor registers runs under the
// shoal agent (shoal agent --health PATH -- PROGRAM ARGS...); a command:
// service's program files are under AppDir, so its command names them
// there.
func containerCommand(m *manifest.Manifest, s *manifest.Service) (entry, args []string, err error) {
	var program []string
	if s.Build != "" {
		name := binaryName(s)
		if s.Register == manifest.RegisterSupervisor && name == "shoal" {
			return nil, nil, fmt.Errorf("deploy: %s: its binary would be called shoal, like the agent it runs under; build it from a folder with another name", s.Name)
		}
		program = append([]string{path.Join(BinDir, name)}, s.Args...)
	} else {
		files := programFiles(m, s)
		for _, a := range append(slices.Clone(s.Command), s.Args...) {
			if f, ok := localFile(m, a); ok && slices.Contains(files, f) {
				a = path.Join(AppDir, f)
			}
			program = append(program, a)
		}
	}
	if s.Register != manifest.RegisterSupervisor {
		return program[:1], nilIfEmpty(program[1:]), nil
	}
	return []string{path.Join(BinDir, "shoal"), "agent", "--health", s.Health, "--"}, program, nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// programFiles are the files of the manifest's folder that a command:
// service's command names (e.g. examples/flix/trailers/trailers.py), as
// slash-separated paths relative to the folder. They go into its image
// under AppDir, each with the rest of its folder (a script's modules), or
// alone when it sits in the manifest's folder itself (which would bring
// the whole project).
func programFiles(m *manifest.Manifest, s *manifest.Service) []string {
	var out []string
	for _, a := range s.Command {
		if f, ok := localFile(m, a); ok && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// localFile reports whether v, a value from the manifest, is a relative
// path to a regular file inside the manifest's folder, and returns it
// cleaned and slash-separated.
func localFile(m *manifest.Manifest, v string) (string, bool) {
	if v == "" || filepath.IsAbs(v) || strings.ContainsAny(v, "\n\x00") {
		return "", false
	}
	rel := filepath.Clean(v)
	if rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	fi, err := os.Stat(filepath.Join(m.Dir, rel))
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return filepath.ToSlash(rel), true
}
