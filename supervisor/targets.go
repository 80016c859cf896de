package supervisor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// metricsTarget says where an instance's metrics are: scheme, host:port
// and path. It is the one place that knows, for the scraper and for the
// Prometheus targets file alike: an SDK program's admin listener, in plain
// HTTP; ok is false for a program that serves none (one the supervisor
// registers in discovery).
func (s *Supervisor) metricsTarget(st InstanceStatus) (scheme, hostport, path string, ok bool) {
	svc := s.byName[st.Service]
	if svc == nil || svc.register != RegisterSDK || st.Admin == "" {
		return "", "", "", false
	}
	return "http", st.Admin, "/metrics", true
}

// TargetsFile is where shoal up writes the Prometheus file-SD targets of
// the system it runs, relative to the manifest's folder.
const TargetsFile = ".shoal/prometheus/targets.json"

// targetGroup is one entry of a Prometheus file_sd_configs file.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// targetGroups lists the instances a Prometheus should scrape: those of
// SDK services that have served (serving, unhealthy or draining), one
// group each so that every target carries its own labels. The labels are
// shoal_-prefixed: service and instance would clash with the labels of
// the metrics themselves (client metrics have a service label) and with
// Prometheus's own instance label.
func (s *Supervisor) targetGroups(st []InstanceStatus) []targetGroup {
	out := []targetGroup{}
	for _, in := range st {
		if in.State != StateServing && in.State != StateUnhealthy && in.State != StateDraining {
			continue
		}
		scheme, hostport, path, ok := s.metricsTarget(in)
		if !ok {
			continue
		}
		out = append(out, targetGroup{Targets: []string{hostport}, Labels: map[string]string{
			"__scheme__":        scheme,
			"__metrics_path__":  path,
			"shoal_system":      s.m.Name,
			"shoal_service":     in.Service,
			"shoal_instance":    in.Service + "/" + strconv.Itoa(in.Index),
			"shoal_instance_id": in.ID,
		}})
	}
	return out
}

// targetsWriter rewrites the targets file when its content changes,
// atomically (a new file renamed over the old), so that Prometheus, which
// watches the file, never reads half of one. Used by the collector's loop
// only.
type targetsWriter struct {
	path string
	last []byte
}

func (w *targetsWriter) write(groups []targetGroup) error {
	b, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return fmt.Errorf("supervisor: targets file: %w", err)
	}
	b = append(b, '\n')
	if w.last != nil && bytes.Equal(b, w.last) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(w.path), 0o755); err != nil {
		return fmt.Errorf("supervisor: targets file: %w", err)
	}
	tmp := w.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("supervisor: targets file: %w", err)
	}
	if err := os.Rename(tmp, w.path); err != nil {
		return fmt.Errorf("supervisor: targets file: %w", err)
	}
	w.last = b
	return nil
}
