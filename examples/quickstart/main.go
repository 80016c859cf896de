// Command quickstart shows Shoal's core in one command: it builds
// examples/hello, starts 3 instances of it as separate processes, calls them
// by name (http://hello/hello) 200 times a second through the resilient
// client, and SIGKILLs one instance midway. Every second it prints how many
// calls succeeded and which instance answered them.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
)

func main() {
	rate := flag.Int("rate", 200, "calls per second")
	dur := flag.Duration("duration", 10*time.Second, "how long to call")
	killAt := flag.Duration("kill-at", 4*time.Second, "when to SIGKILL one instance (0: never)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *rate, *dur, *killAt); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, rate int, dur, killAt time.Duration) error {
	dir, err := os.MkdirTemp("", "shoal-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Print("building examples/hello ... ")
	build := exec.CommandContext(ctx, "go", "build", "-o", dir, "github.com/shoal-dev/shoal/examples/hello")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	fmt.Println("ok")

	// This process is a gossip member too: the seed the instances join.
	gossip := discovery.LocalConfig()
	gossip.Logger = slog.New(slog.DiscardHandler)
	me, err := discovery.New(gossip, discovery.Instance{ID: "quickstart", Service: "quickstart", Addr: "127.0.0.1:9", State: discovery.StateServing})
	if err != nil {
		return err
	}
	gctx, stopGossip := context.WithCancel(context.Background())
	defer stopGossip()
	go func() { _ = me.Run(gctx) }()
	<-me.Ready()

	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
	}()
	for i := range 3 {
		id := fmt.Sprintf("hello-%d", i)
		p := exec.Command(filepath.Join(dir, "hello"))
		p.Env = append(os.Environ(), "SHOAL_INSTANCE="+id, "SHOAL_SEEDS="+me.GossipAddr())
		p.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := p.Start(); err != nil {
			return err
		}
		procs = append(procs, p)
		fmt.Printf("started %s (pid %d)\n", id, p.Process.Pid)
	}
	for len(me.Catalog().Instances("hello")) < 3 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Printf("all 3 instances found through gossip; calling http://hello/hello %d times a second for %v\n", rate, dur)

	tr, err := client.New(me.Catalog(), client.Config{})
	if err != nil {
		return err
	}
	return drive(ctx, tr.Client(), rate, dur, killAt, procs[1])
}

// drive calls hello open-loop and prints a line a second.
func drive(ctx context.Context, c *http.Client, rate int, dur, killAt time.Duration, victim *exec.Cmd) error {
	var mu sync.Mutex
	served := map[string]int{}
	var ok, failed, totalOK, totalFailed int
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	begin := time.Now()
	nextReport, killed := time.Second, killAt <= 0
	for time.Since(begin) < dur {
		select {
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case <-tick.C:
		}
		if !killed && time.Since(begin) >= killAt {
			killed = true
			_ = victim.Process.Signal(syscall.SIGKILL)
			fmt.Printf("  %4.1fs  SIGKILL hello-1 (pid %d)\n", time.Since(begin).Seconds(), victim.Process.Pid)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			instance, err := call(ctx, c)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				fmt.Println("  call failed:", err)
				return
			}
			ok++
			served[instance]++
		}()
		if el := time.Since(begin); el >= nextReport {
			mu.Lock()
			fmt.Printf("  %4.1fs  ok=%-4d failed=%-3d %s\n", el.Seconds(), ok, failed, share(served))
			totalOK, totalFailed = totalOK+ok, totalFailed+failed
			ok, failed, served = 0, 0, map[string]int{}
			mu.Unlock()
			nextReport += time.Second
		}
	}
	wg.Wait()
	totalOK, totalFailed = totalOK+ok, totalFailed+failed
	fmt.Printf("done: %d calls succeeded, %d failed\n", totalOK, totalFailed)
	return nil
}

func call(ctx context.Context, c *http.Client) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://hello/hello", nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct{ Instance string }
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return "", err
	}
	return body.Instance, nil
}

func share(served map[string]int) string {
	var parts []string
	for id, n := range served {
		parts = append(parts, fmt.Sprintf("%s:%d", id, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
