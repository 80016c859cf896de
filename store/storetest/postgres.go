// Package storetest runs a throwaway PostgreSQL server for tests of code
// built on package store, so that the PostgreSQL variants of tests run
// wherever PostgreSQL is installed, with no server to set up.
//
// Postgres gives each test an empty database of its own. With Main in the
// package's TestMain, all tests of the package share one server (started
// on first use, about 1.5 s, stopped when the tests end) and each gets a
// fresh database on it (about 0.1 s); without Main, each test starts and
// stops a server of its own.
//
// PostgreSQL refuses to run as root: when the tests run as root, the
// server runs as the "postgres" user (which Debian's postgresql package
// creates), in a folder given to it. If the server binaries are missing,
// the tests skip, saying how to install them.
package storetest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the admin connection
	"go.uber.org/goleak"
)

// startTimeout bounds initdb plus the server's start.
const startTimeout = 60 * time.Second

// shared is the server of a package whose TestMain calls Main.
var shared struct {
	mu      sync.Mutex
	enabled bool // Main is running the tests
	srv     *server
	err     error // the shared server failed to start: fail fast after
}

var dbCount atomic.Int64

// dirPrefix names the temporary folders of servers.
const dirPrefix = "shoal-postgres-"

var sweepOnce sync.Once

// sweep removes the folders that servers of killed test binaries left
// (the servers died with them): an hour old, with no live server.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		fi, err := os.Stat(dir)
		if err != nil || time.Since(fi.ModTime()) < time.Hour {
			continue
		}
		if pid, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			first, _, _ := strings.Cut(string(pid), "\n")
			if n, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && alive(n) {
				continue
			}
		}
		os.RemoveAll(dir)
	}
}

// Main runs the tests of m, stops the server Postgres started for them,
// if any, checks that the tests left no goroutine behind (goleak), and exits
// with the tests' status. Call it from TestMain:
//
//	func TestMain(m *testing.M) { storetest.Main(m) }
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.enabled = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	if shared.srv != nil {
		if err := shared.srv.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "storetest:", err)
		}
		shared.srv = nil
	}
	shared.mu.Unlock()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines still running after the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Postgres returns the DSN (a postgres:// URL) of an empty PostgreSQL
// database for tb, owned by the superuser "postgres", on a server that
// listens on a Unix socket only and trusts local connections. The database is dropped when tb
// ends (its connections closed); without Main, the server is stopped too.
// If PostgreSQL is not installed, tb skips, saying how to install it.
func Postgres(tb testing.TB) string {
	tb.Helper()
	bin, err := findBin()
	if err != nil {
		tb.Skipf("storetest: %v; install PostgreSQL to run this test (Debian/Ubuntu: apt-get install postgresql)", err)
	}
	as, err := serverUser()
	if err != nil {
		tb.Skipf("storetest: %v", err)
	}
	sweepOnce.Do(sweep)
	shared.mu.Lock()
	if !shared.enabled {
		shared.mu.Unlock()
		srv, err := start(bin, as)
		if err != nil {
			tb.Fatalf("storetest: %v", err)
		}
		tb.Cleanup(func() {
			if err := srv.stop(); err != nil {
				tb.Errorf("storetest: %v", err)
			}
		})
		return srv.dsn("postgres")
	}
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = start(bin, as)
	}
	srv, err := shared.srv, shared.err
	shared.mu.Unlock()
	if err != nil {
		tb.Fatalf("storetest: %v", err)
	}
	name := fmt.Sprintf("test_%d", dbCount.Add(1))
	if _, err := srv.admin.Exec(`CREATE DATABASE ` + name); err != nil {
		tb.Fatalf("storetest: creating database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if _, err := srv.admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			tb.Errorf("storetest: dropping database %s: %v", name, err)
		}
	})
	return srv.dsn(name)
}

// findBin returns the folder of initdb and postgres: the one of initdb in
// PATH (symbolic links resolved), or the newest /usr/lib/postgresql/*/bin.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest first: 16 before 9.6.
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found in PATH or /usr/lib/postgresql/*/bin")
}

func version(bin string) int {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(bin)), 64)
	return int(v * 100)
}

// server is a running postgres process and its folder.
type server struct {
	dir    string // removed by stop: data/, the socket, nothing else
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited; the waiter goroutine then ends
	output *tail
	admin  *sql.DB // to the "postgres" database
}

// dsn names database db on the server's Unix socket (in dir, on the default
// port's file name).
func (s *server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&sslmode=disable", db, url.QueryEscape(s.dir))
}

// start runs initdb into a new temporary folder and starts a server on it.
func start(bin string, as *account) (*server, error) {
	// Not t.TempDir: its parents are private to root, and the server may
	// run as another user.
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	if err := as.give(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	initdb := command(ctx, as, dir, filepath.Join(bin, "initdb"),
		"-D", data, "--no-sync", "--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	s, err := launch(ctx, bin, as, dir, data)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// launch starts the server on data. It listens only on a Unix socket in
// dir, not on TCP: no port to find, so no race with other processes for
// one, and servers of tests running side by side cannot meet.
func launch(ctx context.Context, bin string, as *account, dir, data string) (*server, error) {
	s := &server{dir: dir, exited: make(chan struct{}), output: &tail{}}
	// Speed over durability: the data is thrown away.
	s.cmd = command(context.Background(), as, dir, filepath.Join(bin, "postgres"),
		"-D", data, "-k", dir,
		"-c", "listen_addresses=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB",
		"-c", "autovacuum=off", "-c", "log_min_messages=warning")
	s.cmd.Stdout, s.cmd.Stderr = s.output, s.output
	// The parent-death signal is tied to the thread that started the
	// server, not to the process (go.dev/issue/27505): start it from a
	// thread of its own, held until the server exits. The goroutine ends
	// then, which stop, or our own exit, makes sure of.
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	var err error
	s.admin, err = sql.Open("pgx", s.dsn("postgres"))
	if err == nil {
		err = s.waitReady(ctx)
	}
	if err != nil {
		s.kill()
		return nil, fmt.Errorf("postgres: %w\n%s", err, s.output.String())
	}
	return s, nil
}

func (s *server) waitReady(ctx context.Context) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.admin.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("exited at start (%v)", s.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v: %w", startTimeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop shuts the server down at once (SIGQUIT: PostgreSQL's immediate
// shutdown; the data is thrown away), waits for it to exit, and removes its
// folder.
func (s *server) stop() error {
	if s.admin != nil {
		s.admin.Close()
	}
	shutdown(s.cmd.Process)
	var err error
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		err = fmt.Errorf("postgres did not stop within 10s of SIGQUIT: killed\n%s", s.output.String())
	}
	return errors.Join(err, os.RemoveAll(s.dir))
}

// kill ends a server that failed to start; start removes the folder.
func (s *server) kill() {
	if s.admin != nil {
		s.admin.Close()
	}
	s.cmd.Process.Kill()
	<-s.exited
}

// command runs name as as (nil: as ourselves) in dir. The server and its
// tools get a plain environment: no PG* variables of ours.
func command(ctx context.Context, as *account, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "HOME=" + dir, "TZ=UTC"}
	cmd.SysProcAttr = sysProcAttr(as)
	return cmd
}

// tail keeps the last 16 KiB written to it: the server's log, for errors.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - 16<<10; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}
