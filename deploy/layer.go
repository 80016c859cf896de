package deploy

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layerFiles is the content of one image layer, built in memory: entries
// are written sorted by path, with their parent folders, all owned by root
// unless said otherwise and all stamped with one time, so that the same
// files always make the same bytes.
type layerFiles struct {
	entries map[string]layerEntry // by path, without the leading '/'
}

type layerEntry struct {
	dir  bool
	mode int64
	uid  int
	data []byte
	from string // a file on disk to copy, instead of data
}

func newLayer() *layerFiles { return &layerFiles{entries: map[string]layerEntry{}} }

// dir adds a folder (and its parents).
func (l *layerFiles) dir(p string, mode int64, uid int) {
	p = strings.TrimPrefix(path.Clean(p), "/")
	l.parents(p)
	l.entries[p] = layerEntry{dir: true, mode: mode, uid: uid}
}

// file adds a file with the given content (and its parent folders).
func (l *layerFiles) file(p string, mode int64, data []byte) {
	p = strings.TrimPrefix(path.Clean(p), "/")
	l.parents(p)
	l.entries[p] = layerEntry{mode: mode, data: data}
}

// copyFile adds the file at src on disk as p, read when the layer is
// written. Its mode is 0555 if any execute bit is set, else 0444.
func (l *layerFiles) copyFile(p, src string, fi fs.FileInfo) {
	p = strings.TrimPrefix(path.Clean(p), "/")
	l.parents(p)
	mode := int64(0o444)
	if fi.Mode()&0o111 != 0 {
		mode = 0o555
	}
	l.entries[p] = layerEntry{mode: mode, from: src}
}

// copyTree adds the regular files under the folder src as the folder p,
// skipping hidden files and folders (.git, .venv) and anything that is not
// a regular file or a folder.
func (l *layerFiles) copyTree(p, src string) error {
	return filepath.WalkDir(src, func(f string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if f != src && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(src, f)
		if err != nil {
			return err
		}
		dst := path.Join(p, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			l.dir(dst, 0o755, 0)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			l.copyFile(dst, f, fi)
		}
		return nil
	})
}

func (l *layerFiles) parents(p string) {
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := l.entries[d]; !ok {
			l.entries[d] = layerEntry{dir: true, mode: 0o755}
		}
	}
}

// tar writes the layer as an uncompressed tar stream.
func (l *layerFiles) tar(w io.Writer, mtime time.Time) error {
	tw := tar.NewWriter(w)
	for _, p := range slices.Sorted(maps.Keys(l.entries)) {
		e := l.entries[p]
		h := &tar.Header{Name: p, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: mtime}
		data := e.data
		if e.from != "" {
			var err error
			if data, err = os.ReadFile(e.from); err != nil {
				return fmt.Errorf("deploy: %w", err)
			}
		}
		if e.dir {
			h.Typeflag, h.Name = tar.TypeDir, p+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
		}
		if e.uid != 0 {
			h.Uname, h.Gname = userName, userName
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("deploy: layer: %w", err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("deploy: layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("deploy: layer: %w", err)
	}
	return nil
}

// layer makes the image layer of mediaType (OCI or Docker, as the image's
// other layers), gzip-compressed by go-containerregistry (deterministic
// for the same bytes).
func (l *layerFiles) layer(mtime time.Time, mediaType types.MediaType) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := l.tar(&buf, mtime); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	ly, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(mediaType))
	if err != nil {
		return nil, fmt.Errorf("deploy: layer: %w", err)
	}
	return ly, nil
}
