package manifest

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestChaosSection(t *testing.T) {
	m, err := Parse("m.yaml", []byte(`services:
  web: {build: ./web}
  api: {build: ./api}
chaos:
  monkey:
    enabled: true
    actions: [kill, slow]
    every: 2s
    for: 1m
    exclude: [web]
    slow_for: 3s
    pause: 0.8
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Monkey{Enabled: true, Actions: []string{"kill", "slow"}, Every: 2 * time.Second, For: time.Minute,
		Exclude: []string{"web"}, SlowFor: 3 * time.Second, Pause: 0.8}
	if diff := cmp.Diff(want, m.Chaos.Monkey); diff != "" {
		t.Errorf("monkey (-want +got):\n%s", diff)
	}
}

func TestChaosSectionErrors(t *testing.T) {
	_, err := Parse("m.yaml", []byte(`services:
  web: {build: ./web}
chaos:
  monkey:
    actions: [kill, explode]
    every: 2s
    rate: 1
    stop_for: -1s
    services: [api]
    exclude: [web]
    pause: 1.5
`))
	want := []string{
		`m.yaml:4:3: chaos.monkey: has both every: and rate:; keep every for a fixed interval, or rate for random times`,
		`m.yaml:5:21: chaos.monkey.actions[1]: "explode" is not an action: want kill, stop, slow`,
		`m.yaml:8:15: chaos.monkey.stop_for: -1s must not be negative`,
		`m.yaml:9:16: chaos.monkey.services[0]: "api" is not a service of this manifest; services: web`,
		`m.yaml:11:12: chaos.monkey.pause: 1.5: want a share of time in (0, 1), e.g. pause: 0.5`,
	}
	got := problemLines(err)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	// Built in code, without a manifest: the same checks, no places.
	if err := (Monkey{Exclude: []string{"a"}, Services: []string{"a"}}).Validate(nil); err == nil || !strings.Contains(err.Error(), `"a" is both in services and in exclude`) {
		t.Errorf("Validate: %v", err)
	}
}

// An experiment-like document: decoded by the manifest's rules, its
// checks placed where the file sets the value.
func TestDecodeDocument(t *testing.T) {
	type check struct {
		Name string        `yaml:"name"`
		Max  time.Duration `yaml:"max" example:"1s"`
	}
	type doc struct {
		Name   string  `yaml:"name"`
		Checks []check `yaml:"checks"`
	}
	var v doc
	d, err := DecodeDocument("x.yaml", []byte("name: x\nchecks:\n  - {name: a, max: 2s}\n  - name: b\n    max: 300ms\n"), &v)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "x" || len(v.Checks) != 2 || v.Checks[1].Max != 300*time.Millisecond {
		t.Errorf("decoded %+v", v)
	}
	if e := d.Errorf("checks[1].max", "too long"); e.Error() != "x.yaml:5:10: checks[1].max: too long" {
		t.Errorf("Errorf placed %q", e)
	}
	if !d.Has("checks[0].name") || d.Has("checks[0].other") {
		t.Error("Has")
	}
	_, err = DecodeDocument("x.yaml", []byte("nmae: x\nchecks:\n  - max: 3\n"), &v)
	want := []string{
		"x.yaml:1:1: nmae: unknown key; did you mean name?",
		"x.yaml:3:10: checks[0].max: needs a unit: max: 3ms or max: 3s?",
	}
	if diff := cmp.Diff(want, problemLines(err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if _, err := DecodeDocument("x.yaml", []byte(""), &v); err == nil {
		t.Error("an empty file decoded")
	}
}
