package resilience

import (
	"math"
	"testing"
	"testing/synctest"
	"time"
)

func TestBudgetConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  BudgetConfig
		want string // substring of the error; "" means valid
	}{
		{"default", DefaultBudgetConfig(), ""},
		{"no retries at all", BudgetConfig{Ratio: 0, MinPerSecond: 0, Window: time.Second}, ""},
		{"negative ratio", BudgetConfig{Ratio: -0.1, Window: time.Second}, "ratio -0.1"},
		{"huge ratio", BudgetConfig{Ratio: 11, Window: time.Second}, "ratio 11"},
		{"negative floor", BudgetConfig{Ratio: 0.2, MinPerSecond: -1, Window: time.Second}, "min_per_second -1"},
		{"infinite floor", BudgetConfig{Ratio: 0.2, MinPerSecond: math.Inf(1), Window: time.Second}, "min_per_second +Inf"},
		{"no ratio", BudgetConfig{Ratio: math.NaN(), Window: time.Second}, "ratio NaN"},
		{"tiny window", BudgetConfig{Ratio: 0.2, Window: time.Millisecond}, "window 1ms"},
		{"default window", BudgetConfig{Ratio: 0.1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidate(t, tt.cfg.Validate(), tt.want) })
	}
}

func TestBudgetAllowance(t *testing.T) {
	tests := []struct {
		name     string
		cfg      BudgetConfig
		requests int
		want     int // retries allowed within one window
	}{
		{"floor only", DefaultBudgetConfig(), 0, 100},
		{"ratio plus floor", DefaultBudgetConfig(), 1000, 300},
		{"ratio only", BudgetConfig{Ratio: 0.5, Window: time.Second}, 10, 5},
		{"none", BudgetConfig{Window: time.Second}, 1000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := NewBudget(tt.cfg)
				for range tt.requests {
					b.Request()
				}
				if got := b.Left(); got != tt.want {
					t.Errorf("Left() = %d, want %d", got, tt.want)
				}
				got := 0
				for b.TryRetry() {
					got++
					if got > 10*tt.want+10 {
						t.Fatal("budget never runs out")
					}
				}
				if got != tt.want {
					t.Errorf("retries allowed = %d, want %d", got, tt.want)
				}
				if b.Left() != 0 {
					t.Errorf("Left() after spending = %d, want 0", b.Left())
				}
			})
		})
	}
}

func TestBudgetPartialConfigGetsDefaultWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(BudgetConfig{Ratio: 0.1})
		for range 100 {
			b.Request()
		}
		if got := b.Left(); got != 10 {
			t.Fatalf("Left() = %d, want 10 (ratio only, no floor)", got)
		}
		time.Sleep(9 * time.Second)
		if got := b.Left(); got != 10 {
			t.Fatalf("requests left the default 10s window after 9s: Left() = %d", got)
		}
	})
}

func TestBudgetRefillsAsWindowSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(BudgetConfig{Ratio: 0, MinPerSecond: 1, Window: 10 * time.Second})
		for range 10 {
			if !b.TryRetry() {
				t.Fatal("floor of 10 retries per window not granted")
			}
		}
		if b.TryRetry() {
			t.Fatal("11th retry in the window was allowed")
		}
		time.Sleep(9 * time.Second) // fake clock: the retries are still in the window
		if b.TryRetry() {
			t.Fatal("retry allowed before the spent ones left the window")
		}
		time.Sleep(1 * time.Second)
		if got := b.Left(); got != 10 {
			t.Fatalf("Left() after a full window = %d, want 10", got)
		}
	})
}

func TestBudgetRequestsAgeOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(BudgetConfig{Ratio: 0.5, Window: time.Second})
		for range 100 {
			b.Request()
		}
		if got := b.Left(); got != 50 {
			t.Fatalf("Left() = %d, want 50", got)
		}
		time.Sleep(2 * time.Second)
		if got := b.Left(); got != 0 {
			t.Fatalf("Left() after requests aged out = %d, want 0", got)
		}
	})
}

// A dependency where every attempt fails: callers retry as long as the budget
// lets them (up to 2 retries each). The load the dependency sees must stay
// within (1 + ratio) × offered + the floor, not 3× offered.
func TestBudgetBoundsLoadOnDeadDependency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(DefaultBudgetConfig())
		const rate, seconds = 500, 30
		offered, sent := 0, 0
		for range seconds * 100 {
			for range rate / 100 {
				offered++
				b.Request()
				sent++
				for range 2 {
					if !b.TryRetry() {
						break
					}
					sent++
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		limit := 1.2*float64(offered) + 10*seconds
		t.Logf("offered %d, sent %d (%.2fx), limit %.0f", offered, sent, float64(sent)/float64(offered), limit)
		if float64(sent) > limit {
			t.Fatalf("dependency saw %d attempts for %d requests, over the budget's %.0f", sent, offered, limit)
		}
		if float64(sent) < 1.15*float64(offered) {
			t.Fatalf("budget too stingy: %d attempts for %d requests", sent, offered)
		}
	})
}

func BenchmarkBudget(b *testing.B) {
	bud := NewBudget(DefaultBudgetConfig())
	b.ReportAllocs()
	for b.Loop() {
		bud.Request()
		bud.TryRetry()
	}
}
