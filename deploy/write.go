package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// refNameAnnotation tags an image in an OCI layout's index.json (skopeo's
// oci:DIR:TAG reads it).
const refNameAnnotation = "org.opencontainers.image.ref.name"

// WriteLayout writes the image as an OCI image layout in the folder dir,
// replacing one written there before (and nothing else): push it with
// `crane push DIR REF` or `skopeo copy oci:DIR docker://REF`. The image's
// tag (the part of Ref after ':') names it in the layout's index.
func (im Image) WriteLayout(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return fmt.Errorf("deploy: %s exists and is not an OCI image layout; not replacing it", dir)
		}
	}
	// Written beside and renamed into place: a failed write leaves the
	// previous layout whole.
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	tag, err := name.NewTag(im.Ref)
	if err != nil {
		return fmt.Errorf("deploy: %s: %w", im.Service, err)
	}
	if err := p.AppendImage(im.Image, layout.WithAnnotations(map[string]string{refNameAnnotation: tag.TagStr()})); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("deploy: %s: %w", im.Service, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	return nil
}

// WriteTarball writes the image as a docker-archive tarball tagged with
// its Ref, for `docker load -i FILE` or `podman load -i FILE`.
func (im Image) WriteTarball(file string) error {
	tag, err := name.NewTag(im.Ref)
	if err != nil {
		return fmt.Errorf("deploy: %s: %w", im.Service, err)
	}
	if err := tarball.WriteToFile(file, tag, im.Image); err != nil {
		return fmt.Errorf("deploy: %s: %w", im.Service, err)
	}
	return nil
}

// readBase reads the base image at p: an OCI layout folder (the image for
// plat, when it holds several) or a docker-archive file.
func readBase(p string, plat v1.Platform) (v1.Image, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	var img v1.Image
	if fi.IsDir() {
		idx, err := layout.ImageIndexFromPath(p)
		if err != nil {
			return nil, err
		}
		if img, err = imageFor(idx, plat); err != nil {
			return nil, err
		}
	} else if img, err = tarball.ImageFromPath(p, nil); err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if cf.OS != plat.OS || cf.Architecture != plat.Architecture {
		return nil, fmt.Errorf("it is for %s/%s, not %s/%s", cf.OS, cf.Architecture, plat.OS, plat.Architecture)
	}
	return img, nil
}

// imageFor finds the image for plat in idx, looking into nested indexes
// (a multi-platform image pulled into a layout); an index of one image
// without platforms gives that image.
func imageFor(idx v1.ImageIndex, plat v1.Platform) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var images []v1.Descriptor
	var others []string
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			img, err := imageFor(child, plat)
			if err == nil {
				return img, nil
			}
			others = append(others, err.Error())
		case d.MediaType.IsImage():
			if d.Platform == nil {
				images = append(images, d)
				continue
			}
			if d.Platform.OS == plat.OS && d.Platform.Architecture == plat.Architecture {
				return idx.Image(d.Digest)
			}
			others = append(others, d.Platform.OS+"/"+d.Platform.Architecture)
		}
	}
	if len(images) == 1 {
		return idx.Image(images[0].Digest) // its config says its platform
	}
	if len(others) > 0 {
		return nil, fmt.Errorf("it holds images for %s, not %s/%s", strings.Join(others, ", "), plat.OS, plat.Architecture)
	}
	return nil, errors.New("it holds no image")
}
