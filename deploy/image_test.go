package deploy

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shoal-dev/shoal/manifest"
)

// flix loads the reference system's manifest, shoal.yaml at the root of
// the repository.
func flix(t testing.TB) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Load(filepath.Join("..", "shoal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var testRelease = Release{
	Version:  "v1.2.3",
	Revision: "0123456789abcdef0123456789abcdef01234567",
	Source:   "https://example.com/shoal",
	Created:  time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC),
}

// fakePython writes into dir an OCI layout holding a stand-in for a
// Python base image of arch: /usr/bin/python3 and a PATH, no shell.
func fakePython(dir, arch string) (string, error) {
	l := newLayer()
	l.file("/usr/bin/python3", 0o755, []byte("not really python\n"))
	ly, err := l.layer(time.Unix(0, 0), types.OCILayer)
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), ly)
	if err != nil {
		return "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config = v1.Config{Env: []string{"PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8"}, Cmd: []string{"python3"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return "", err
	}
	dir = filepath.Join(dir, "python-"+arch)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", err
	}
	return dir, p.AppendImage(img, layout.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))
}

// buildFlix builds the images of trailers (on a fake Python base written
// into dir), gateway and catalog.
func buildFlix(dir string, r Release) (map[string]Image, error) {
	m, err := manifest.Load(filepath.Join("..", "shoal.yaml"))
	if err != nil {
		return nil, err
	}
	python, err := fakePython(dir, "amd64")
	if err != nil {
		return nil, err
	}
	opts := ImageOptions{
		Services: []string{"trailers", "gateway", "catalog"},
		Registry: "registry.example/acme",
		Release:  r,
		Bases:    map[string]string{"trailers": python},
	}
	imgs, err := BuildImages(context.Background(), m, opts)
	if err != nil {
		return nil, err
	}
	out := map[string]Image{}
	for _, im := range imgs {
		out[im.Service] = im
	}
	return out, nil
}

// TestImages builds the images once (go build is the slow part) and
// checks them in subtests.
func TestImages(t *testing.T) {
	imgs, err := buildFlix(t.TempDir(), testRelease)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("flix", func(t *testing.T) { testImagesOfFlix(t, imgs) })
	t.Run("reproducible", func(t *testing.T) { testImagesAreReproducible(t, imgs) })
	t.Run("write", func(t *testing.T) { testWriteImages(t, imgs["catalog"]) })
	t.Run("binary runs", func(t *testing.T) { testImageBinaryRuns(t, imgs["gateway"]) })
}

// imageFile is one file of an image's flattened filesystem.
type imageFile struct {
	hdr  *tar.Header
	data []byte
}

func imageFiles(t *testing.T, img v1.Image) map[string]imageFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]imageFile{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out["/"+strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = imageFile{h, data}
	}
}

func testImagesOfFlix(t *testing.T, imgs map[string]Image) {
	if got := slices.Sorted(maps.Keys(imgs)); !slices.Equal(got, []string{"catalog", "gateway", "trailers"}) {
		t.Fatalf("built %v", got)
	}
	for _, tt := range []struct {
		service    string
		ref        string
		entrypoint []string
		cmd        []string
		bin        string   // must be a static executable
		files      []string // must exist
		fromBase   bool
	}{
		{
			service: "gateway", ref: "registry.example/acme/flix-gateway:v1.2.3",
			entrypoint: []string{"/usr/local/bin/shoal"}, cmd: []string{"gateway", "--config", "shoal.yaml"},
			bin: "/usr/local/bin/shoal", files: []string{"/etc/passwd", "/etc/group", CACertsFile, "/etc/nsswitch.conf", WorkDir, tmpDir},
		},
		{
			service: "catalog", ref: "registry.example/acme/flix-catalog:v1.2.3",
			entrypoint: []string{"/usr/local/bin/catalog"},
			bin:        "/usr/local/bin/catalog", files: []string{"/etc/passwd", CACertsFile},
		},
		{
			service: "trailers", ref: "registry.example/acme/flix-trailers:v1.2.3",
			entrypoint: []string{"/usr/local/bin/shoal", "agent", "--health", "/healthz", "--"},
			cmd:        []string{"python3", "/app/examples/flix/trailers/trailers.py"},
			bin:        "/usr/local/bin/shoal", files: []string{"/usr/bin/python3", "/app/examples/flix/trailers/trailers.py"},
			fromBase: true,
		},
	} {
		t.Run(tt.service, func(t *testing.T) {
			im := imgs[tt.service]
			if im.Ref != tt.ref {
				t.Errorf("ref %q, want %q", im.Ref, tt.ref)
			}
			cf, err := im.Image.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
			}
			c := cf.Config
			if c.User != "65532:65532" {
				t.Errorf("user %q, want 65532:65532 (numeric, not root)", c.User)
			}
			if diff := cmp.Diff(tt.entrypoint, c.Entrypoint); diff != "" {
				t.Errorf("entrypoint (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.cmd, c.Cmd); diff != "" {
				t.Errorf("cmd (-want +got):\n%s", diff)
			}
			if c.WorkingDir != WorkDir {
				t.Errorf("working dir %q", c.WorkingDir)
			}
			wantLabels := map[string]string{
				"org.opencontainers.image.title":    "flix-" + tt.service,
				"org.opencontainers.image.version":  "v1.2.3",
				"org.opencontainers.image.revision": testRelease.Revision,
				"org.opencontainers.image.source":   "https://example.com/shoal",
				"org.opencontainers.image.created":  "2026-11-26T12:00:00Z",
			}
			if diff := cmp.Diff(wantLabels, c.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			if !cf.Created.Time.Equal(testRelease.Created) {
				t.Errorf("created %v, want %v", cf.Created.Time, testRelease.Created)
			}
			for _, h := range cf.History {
				if !h.Created.Time.Equal(testRelease.Created) && !tt.fromBase {
					t.Errorf("history entry %q created %v", h.CreatedBy, h.Created.Time)
				}
			}
			for _, p := range []string{"8080/tcp", "9090/tcp", "7946/tcp", "7946/udp"} {
				if _, ok := c.ExposedPorts[p]; !ok {
					t.Errorf("port %s not exposed", p)
				}
			}
			if tt.fromBase && !slices.Contains(c.Env, "PATH=/usr/local/bin:/usr/bin") {
				t.Errorf("env %v: the base's PATH is lost", c.Env)
			}

			files := imageFiles(t, im.Image)
			for _, sh := range []string{"/bin/sh", "/bin/bash", "/usr/bin/sh", "/bin/busybox", "/bin"} {
				if _, ok := files[sh]; ok {
					t.Errorf("%s in the image: no shell wanted", sh)
				}
			}
			for _, f := range append(tt.files, tt.bin) {
				if _, ok := files[f]; !ok {
					t.Errorf("%s missing", f)
				}
			}
			for p, f := range files {
				if !tt.fromBase && f.hdr.ModTime.Unix() != testRelease.Created.Unix() {
					t.Errorf("%s: mtime %v, want the release's", p, f.hdr.ModTime)
				}
			}
			bin := files[tt.bin]
			if bin.hdr == nil || bin.hdr.Mode&0o111 == 0 || bin.hdr.Uid != 0 || bin.hdr.Mode&0o222 != 0 {
				t.Errorf("%s: want a root-owned read-only executable, got %+v", tt.bin, bin.hdr)
			} else {
				checkStatic(t, tt.bin, bin.data)
			}
			if tt.fromBase {
				return
			}
			if pw := string(files["/etc/passwd"].data); !strings.Contains(pw, "nonroot:x:65532:65532:") {
				t.Errorf("/etc/passwd has no user 65532:\n%s", pw)
			}
			checkCACerts(t, files[CACertsFile].data)
			if tmp := files[tmpDir].hdr; tmp.Mode&0o1777 != 0o1777 {
				t.Errorf("/tmp mode %o, want 1777", tmp.Mode)
			}
		})
	}
}

// checkStatic fails unless data is an ELF executable without a dynamic
// loader: CGO_ENABLED=0 worked, and it runs on an image with no libc.
func checkStatic(t *testing.T, name string, data []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("%s: machine %v, want x86-64", name, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: dynamically linked (has an interpreter)", name)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s: has a symbol table: built without -ldflags=-s", name)
	}
}

func checkCACerts(t *testing.T, data []byte) {
	t.Helper()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			t.Fatalf("certificate %d: %v", n+1, err)
		}
		n++
	}
	if n < 100 {
		t.Errorf("%d CA certificates, want the NSS roots (over 100)", n)
	}
}

// The same sources and release make the same images, digest for digest.
// (That the release's time is in them, rather than the build's, is
// checked file by file in testImagesOfFlix.)
func testImagesAreReproducible(t *testing.T, first map[string]Image) {
	second, err := buildFlix(t.TempDir(), testRelease)
	if err != nil {
		t.Fatal(err)
	}
	for name, im := range first {
		d1, err := im.Image.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if d2, _ := second[name].Image.Digest(); d1 != d2 {
			t.Errorf("%s: built twice, digests %s and %s", name, d1, d2)
		}
	}
}

// Written as an OCI layout and a docker-archive, the images read back with
// the same config, tagged; a layout is replaced, nothing else is.
func testWriteImages(t *testing.T, im Image) {
	dir := t.TempDir()
	lay := filepath.Join(dir, "catalog")
	for range 2 { // the second write replaces the first
		if err := im.WriteLayout(lay); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := layout.ImageIndexFromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	man, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := im.Image.Digest()
	if len(man.Manifests) != 1 || man.Manifests[0].Digest != want || man.Manifests[0].Annotations[refNameAnnotation] != "v1.2.3" {
		t.Fatalf("layout index %+v, want one image %s tagged v1.2.3", man.Manifests, want)
	}
	back, err := idx.Image(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := validateImage(back); err != nil {
		t.Fatal(err)
	}

	tarFile := filepath.Join(dir, "catalog.tar")
	if err := im.WriteTarball(tarFile); err != nil {
		t.Fatal(err)
	}
	fromTar, err := tarball.ImageFromPath(tarFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := im.Image.ConfigName()
	c2, err := fromTar.ConfigName()
	if err != nil || c1 != c2 {
		t.Errorf("docker-archive config %s (%v), want %s", c2, err, c1)
	}
	mf, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(tarFile) })
	if err != nil {
		t.Fatal(err)
	}
	if len(mf) != 1 || len(mf[0].RepoTags) != 1 || !strings.HasSuffix(mf[0].RepoTags[0], "registry.example/acme/flix-catalog:v1.2.3") {
		t.Errorf("docker-archive tags %+v", mf)
	}

	other := filepath.Join(dir, "not-a-layout")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := im.WriteLayout(other); err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Errorf("writing over a folder that is not a layout: %v", err)
	}
}

// validateImage reads every blob of img and checks digests and sizes.
func validateImage(img v1.Image) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			return err
		}
		rc.Close()
	}
	return nil
}

// The gateway's binary runs: it is the shoal command, for this machine
// when this machine is linux/amd64.
func testImageBinaryRuns(t *testing.T, gateway Image) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("the images are linux/amd64; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	files := imageFiles(t, gateway.Image)
	bin := filepath.Join(t.TempDir(), "shoal")
	if err := os.WriteFile(bin, files["/usr/local/bin/shoal"].data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "gateway", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--config") {
		t.Fatalf("shoal gateway --help: %v\n%s", err, out)
	}
}

func TestBuildImagesRefuses(t *testing.T) {
	m := flix(t)
	arm, err := fakePython(t.TempDir(), "arm64")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		opts ImageOptions
		want string
	}{
		{"command service without a base", ImageOptions{Services: []string{"trailers"}, Release: testRelease}, "--base trailers=PATH"},
		{"unknown service", ImageOptions{Services: []string{"catalogue"}, Release: testRelease}, `no service "catalogue"`},
		{"base for a build service", ImageOptions{Services: []string{"catalog"}, Release: testRelease, Bases: map[string]string{"catalog": "x"}}, "--base catalog"},
		{"bad platform", ImageOptions{Platform: "windows/amd64", Release: testRelease}, "want linux/ARCH"},
		{"bad tag", ImageOptions{Release: Release{Version: "-x"}}, "cannot be an image tag"},
		{"base of another platform", ImageOptions{Services: []string{"trailers"}, Release: testRelease, Bases: map[string]string{"trailers": arm}}, "not linux/amd64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := BuildImages(context.Background(), m, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
