package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/deploy"
	"github.com/shoal-dev/shoal/manifest"
)

func newImage(e env, file *string) *cobra.Command {
	var (
		out, platform, registry, tag string
		tarballs                     bool
		bases, skip                  []string
	)
	c := &cobra.Command{
		Use:   "image [SERVICE...] -o DIR",
		Short: "Build an OCI image per service, without a container daemon",
		Long: `image builds a container image for each service of the manifest (or each
SERVICE named), without Docker: every build: package is compiled statically
(CGO off, the release flags shoal up uses) for --platform and laid on a
base that holds only a non-root user (65532), CA certificates and a few
folders: no shell. Labels carry the version, the source revision and a
fixed time (SOURCE_DATE_EPOCH, else the commit's), so the same sources
build the same image digests.

A command: service (a program in another language) runs under 'shoal
agent', which announces it in discovery once its health check passes: its
image is a base image you give with --base SERVICE=PATH that holds the
program's runtime (an OCI layout folder or a docker-archive file, e.g. from
'crane pull python:3.13-slim python.tar'), plus the program's files under
/app and the shoal binary.

Each image is written to DIR/SERVICE as an OCI image layout, and with
--tarball also to DIR/SERVICE.tar for docker load or podman load. Images
are named [REGISTRY/]SYSTEM-SERVICE:TAG, the names 'shoal export
kubernetes' puts in the pods. Push one with
  crane push DIR/SERVICE REF      or
  skopeo copy oci:DIR/SERVICE docker://REF`,
		Example: `  shoal image -o images --registry ghcr.io/acme gateway catalog
  shoal image -o images --skip trailers
  shoal image -o images --base trailers=python.tar --tarball
  crane push images/catalog ghcr.io/acme/flix-catalog:v1.4.0`,
		RunE: func(c *cobra.Command, args []string) error {
			if out == "" {
				return usagef("image: give the output folder with -o DIR")
			}
			baseOf := map[string]string{}
			for _, b := range bases {
				name, path, ok := strings.Cut(b, "=")
				if !ok || !manifest.ValidServiceName(name) || path == "" {
					return usagef("image: --base %q: want SERVICE=PATH, e.g. --base trailers=python.tar", b)
				}
				baseOf[name] = path
			}
			m, err := loadManifest("image", *file, "")
			if err != nil {
				return err
			}
			services, err := imageServices(m, args, skip)
			if err != nil {
				return err
			}
			rel, err := release(c, e, m, tag)
			if err != nil {
				return err
			}
			imgs, err := deploy.BuildImages(c.Context(), m, deploy.ImageOptions{
				Services: services, Platform: platform, Registry: registry, Release: rel,
				Bases: baseOf, Progress: e.stdout,
			})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVICE\tIMAGE\tDIGEST\tWRITTEN TO")
			for _, im := range imgs {
				dir := filepath.Join(out, im.Service)
				if err := im.WriteLayout(dir); err != nil {
					return err
				}
				where := dir
				if tarballs {
					if err := im.WriteTarball(dir + ".tar"); err != nil {
						return err
					}
					where += ", " + dir + ".tar"
				}
				d, err := im.Image.Digest()
				if err != nil {
					return fmt.Errorf("image: %s: %w", im.Service, err)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", im.Service, im.Ref, d, where)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "\npush each with: crane push %s REF (or skopeo copy oci:%s docker://REF)\n",
				filepath.Join(out, imgs[0].Service), filepath.Join(out, imgs[0].Service))
			return nil
		},
	}
	addFileFlag(c, file, true)
	c.Flags().StringVarP(&out, "output", "o", "", "folder to write the images to, one OCI layout per service (required)")
	c.Flags().StringVar(&platform, "platform", deploy.DefaultPlatform, "OS/ARCH of the images")
	addImageFlags(c, &registry, &tag)
	c.Flags().BoolVar(&tarballs, "tarball", false, "also write DIR/SERVICE.tar, a docker-archive for docker load or podman load")
	c.Flags().StringSliceVar(&skip, "skip", nil, "`SERVICE`s not to build (comma-separated or repeated), e.g. a command: service you have no --base for")
	c.Flags().StringArrayVar(&bases, "base", nil, "`SERVICE=PATH`: the base image of a command: service (OCI layout folder or docker-archive file); repeat per service")
	return c
}

// imageServices are the services to build: those named (all of m's if
// none; BuildImages checks the names), less those skipped, which must be
// m's.
func imageServices(m *manifest.Manifest, named, skip []string) ([]string, error) {
	var all []string
	for _, s := range m.Services {
		all = append(all, s.Name)
	}
	if bad := manifest.NotServices(skip, all, "the manifest"); len(bad) > 0 {
		return nil, usagef("image: --skip: %s", strings.Join(bad, "; "))
	}
	if len(skip) == 0 {
		return named, nil // none named: BuildImages builds them all
	}
	out := named
	if len(out) == 0 {
		out = all
	}
	out = slices.DeleteFunc(slices.Clone(out), func(s string) bool { return slices.Contains(skip, s) })
	if len(out) == 0 {
		return nil, usagef("image: --skip %s leaves no service to build", strings.Join(skip, ","))
	}
	return out, nil
}

// addImageFlags adds the flags that name images, shared by image and
// export kubernetes so that both name them alike.
func addImageFlags(c *cobra.Command, registry, tag *string) {
	c.Flags().StringVar(registry, "registry", "", "registry and path the images are pushed to, e.g. ghcr.io/acme (images are REGISTRY/SYSTEM-SERVICE:TAG)")
	c.Flags().StringVar(tag, "tag", "", "image tag and instance version (default: git describe --tags --always --dirty of the manifest's folder)")
}

// release describes the sources of m, with tag as the version if given.
func release(c *cobra.Command, e env, m *manifest.Manifest, tag string) (deploy.Release, error) {
	rel, err := deploy.ReadRelease(c.Context(), m.Dir, e.getenv)
	if err != nil {
		return rel, err
	}
	if rel.Revision == "" {
		// Nothing to say where the images come from: say so, once.
		what := fmt.Sprintf("no revision or source labels, created %s", rel.Created.Format(time.DateOnly))
		if e.getenv(deploy.EnvSourceDateEpoch) == "" {
			what += " (set " + deploy.EnvSourceDateEpoch + ")"
		}
		if tag == "" {
			what += `, version "dev" (give --tag)`
		}
		fmt.Fprintf(e.stderr, "shoal: warning: no git revision for %s (not a git checkout, no commit yet, or no git): %s\n", m.Dir, what)
	}
	if tag != "" {
		rel.Version = tag
	}
	return rel, rel.Check()
}
