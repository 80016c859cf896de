package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/manifest"
)

func TestDeployCommandsHelp(t *testing.T) {
	checkHelp(t, [][]string{{"image"}, {"export", "kubernetes"}, {"agent"}}, []string{"image", "export", "agent"})
}

func TestDeployUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"image"}, "shoal: image: give the output folder with -o DIR"},
		{[]string{"image", "-o", "x", "--base", "trailers"}, `shoal: image: --base "trailers": want SERVICE=PATH`},
		{[]string{"export", "kubernetes"}, "shoal: export kubernetes: give the output folder with -o DIR"},
		{[]string{"export"}, "shoal: export: name the platform: shoal export kubernetes -o DIR"},
		{[]string{"agent"}, "shoal: agent: give the program to run after --"},
	} {
		code, _, errOut := runCLI(t, tt.args...)
		if code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: status %d, stderr %q; want 2 and %q", tt.args, code, errOut, tt.want)
		}
	}
}

// shoal export kubernetes writes the objects of the reference system.
func TestExportKubernetes(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLI(t, "-f", referenceManifest, "export", "kubernetes", "-o", dir, "--tag", "v9", "-n", "flix")
	if code != 0 {
		t.Fatalf("status %d\n%s%s", code, out, errOut)
	}
	for _, f := range []string{"gateway.yaml", "catalog.yaml", "gossip.yaml", "config.yaml", "Kustomization", "secrets.sh", "00-namespace.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "catalog.yaml"))
	if !strings.Contains(string(b), "image: flix-catalog:v9") {
		t.Errorf("catalog.yaml does not name the image flix-catalog:v9:\n%s", b)
	}
}

// Outside git, export (and image) say what the images will lack.
func TestExportOutsideGit(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shoal.yaml")
	if err := os.WriteFile(file, []byte("name: solo\nservices:\n  svc: {command: [python3, app.py]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "-f", file, "export", "kubernetes", "-o", filepath.Join(dir, "k8s"))
	want := "shoal: warning: no git revision for " + dir + ` (not a git checkout, no commit yet, or no git): no revision or source labels, created 1970-01-01 (set SOURCE_DATE_EPOCH), version "dev" (give --tag)`
	if code != 0 || !strings.Contains(errOut, want) {
		t.Errorf("status %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, want)
	}
}

// image --skip builds every service (or every one named) but those.
func TestImageSkip(t *testing.T) {
	m, err := manifest.Load(referenceManifest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := imageServices(m, nil, []string{"trailers", "search"})
	if err != nil || len(got) != len(m.Services)-2 || slices.Contains(got, "trailers") || slices.Contains(got, "search") || !slices.Contains(got, "gateway") {
		t.Errorf("--skip trailers,search: %v, %v", got, err)
	}
	if got, err := imageServices(m, []string{"api", "catalog"}, []string{"catalog"}); err != nil || !slices.Equal(got, []string{"api"}) {
		t.Errorf("api catalog --skip catalog: %v, %v", got, err)
	}
	if got, err := imageServices(m, []string{"api"}, nil); err != nil || !slices.Equal(got, []string{"api"}) {
		t.Errorf("api: %v, %v", got, err)
	}
	code, _, errOut := runCLI(t, "-f", referenceManifest, "image", "-o", t.TempDir(), "--skip", "trailrs")
	if want := `shoal: image: --skip: "trailrs" is not a service of the manifest; did you mean trailers?`; code != 2 || !strings.Contains(errOut, want) {
		t.Errorf("--skip trailrs: status %d, stderr %q; want 2 and %q", code, errOut, want)
	}
	code, _, errOut = runCLI(t, "-f", referenceManifest, "image", "-o", t.TempDir(), "api", "--skip", "api")
	if want := "shoal: image: --skip api leaves no service to build"; code != 2 || !strings.Contains(errOut, want) {
		t.Errorf("api --skip api: status %d, stderr %q; want 2 and %q", code, errOut, want)
	}
}
