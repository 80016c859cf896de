package chaos

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := KeyFile(dir)
	if _, err := LoadKey(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadKey before any: %v, want ErrNotExist", err)
	}
	// Made at once by several processes, the key is one.
	keys := make([]string, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := LoadOrCreateKey(path)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = PublicKey(k)
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k != keys[0] {
			t.Fatalf("keys differ: %v", keys)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".chaos-key-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path); err == nil {
		t.Error("a file without a key was read as one")
	}
}
