package identity

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestSourceReload(t *testing.T) {
	ca := newCA(t, "flix")
	bundle := bundleOf(t, ca)
	f := writeFiles(t, t.TempDir(), issue(t, ca, "profiles"), bundle)
	src, err := LoadSource(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := src.Credentials()

	if changed, err := src.Reload(); err != nil || changed {
		t.Fatalf("Reload with nothing changed = %v, %v", changed, err)
	}
	renewed := issue(t, ca, "profiles")
	if err := renewed.WriteFiles(f.Cert, f.Key); err != nil {
		t.Fatal(err)
	}
	if changed, err := src.Reload(); err != nil || !changed {
		t.Fatalf("Reload after renewal = %v, %v", changed, err)
	}
	if got := src.Credentials().Cert.Leaf; !got.Equal(renewed.Leaf) {
		t.Fatalf("serving %v after reload, want the renewed certificate", got.SerialNumber)
	}

	// A rotated bundle alone is a change too.
	next := newCA(t, "flix")
	if err := writeFileAtomic(f.Bundle, bundleOf(t, ca, next).PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := src.Reload(); err != nil || !changed || len(src.Credentials().Bundle.CAs()) != 2 {
		t.Fatalf("Reload after bundle rotation = %v, %v", changed, err)
	}

	// A broken file keeps the last good credentials, and is retried.
	good := src.Credentials()
	if err := writeFileAtomic(f.Cert, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Reload(); err == nil {
		t.Fatal("Reload of a broken certificate succeeded")
	}
	if src.Credentials() != good {
		t.Fatal("a failed reload replaced the credentials")
	}
	if err := issue(t, ca, "profiles").WriteFiles(f.Cert, f.Key); err != nil {
		t.Fatal(err)
	}
	if changed, err := src.Reload(); err != nil || !changed {
		t.Fatalf("Reload after the file was fixed = %v, %v", changed, err)
	}
	if src.Credentials() == first {
		t.Fatal("still the first credentials")
	}

	if _, err := NewSource(first).Reload(); err == nil {
		t.Error("Reload of an in-memory source succeeded")
	}
}

// TestSourceRun: the poll loop picks up a renewal within PollInterval and
// returns when its context ends.
func TestSourceRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Created inside the bubble: certificates must be valid at its clock.
		ca := newCA(t, "flix")
		f := writeFiles(t, t.TempDir(), issue(t, ca, "profiles"), bundleOf(t, ca))
		logs := &strings.Builder{}
		src, err := LoadSource(f, slog.New(slog.NewTextHandler(logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- src.Run(ctx) }()

		renewed := issue(t, ca, "profiles")
		if err := renewed.WriteFiles(f.Cert, f.Key); err != nil {
			t.Fatal(err)
		}
		time.Sleep(PollInterval)
		synctest.Wait()
		if !src.Credentials().Cert.Leaf.Equal(renewed.Leaf) {
			t.Fatal("Run did not pick up the renewal within PollInterval")
		}

		// A broken file is reported once, not on every poll.
		if err := os.WriteFile(f.Cert, []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * PollInterval)
		synctest.Wait()
		if n := strings.Count(logs.String(), "reload failed"); n != 1 {
			t.Errorf("reload failure logged %d times, want 1:\n%s", n, logs)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
	})
}
