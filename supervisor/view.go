package supervisor

import (
	"context"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The supervisor's view of the system for a dashboard: read methods that
// copy what they return, and the control operations the CLI has. All are
// safe for concurrent use while Run runs.

// DashboardFunc returns the handler of a dashboard for s; every request
// must carry token (see the dashboard package). Run serves it on its own
// loopback listener and prints its URL.
type DashboardFunc func(s *Supervisor, token string) http.Handler

// Overview is the whole system at one moment.
type Overview struct {
	System   string        `json:"system"`
	Manifest string        `json:"manifest"`
	Now      time.Time     `json:"now"`
	StepS    float64       `json:"step_s"` // seconds between points of a Series
	Services []ServiceView `json:"services"`
	Edges    []Edge        `json:"edges"`
	Traces   TraceStats    `json:"traces"`
}

// ServiceView is one service, its instances and its recent traffic.
type ServiceView struct {
	Name string `json:"name"`
	// Kind is sdk for a program that uses the SDK (it has metrics and
	// joins discovery itself), command for one the supervisor registers.
	Kind      string         `json:"kind"`
	Gateway   []string       `json:"gateway,omitempty"` // URLs of a service named gateway
	Rates     Rates          `json:"rates"`             // the last window
	Series    Series         `json:"series"`            // the last minutes
	Instances []InstanceView `json:"instances"`
}

// InstanceView is one instance: its process as ps shows it, when it last
// exited, and what its metrics say.
type InstanceView struct {
	InstanceStatus
	Slot     string           `json:"slot"`               // service/index
	ExitedAt time.Time        `json:"exited_at,omitzero"` // of the last unasked exit
	Metrics  *InstanceMetrics `json:"metrics,omitempty"`  // nil for a program without metrics
}

// TraceStats describe the trace store.
type TraceStats struct {
	Traces  int    `json:"traces"`
	Bytes   int    `json:"bytes"`
	Dropped uint64 `json:"dropped"` // spans refused for lack of room
	Version uint64 `json:"version"` // changes whenever spans arrive
}

// LogLine is one line an instance wrote.
type LogLine struct {
	Seq      uint64 `json:"seq"`
	Instance string `json:"instance"` // service/index
	Text     string `json:"text"`
}

// Overview returns the state of every service and instance, the calls
// between services and the trace store's figures.
func (s *Supervisor) Overview() Overview {
	o := s.col
	ov := Overview{System: s.m.Name, Manifest: s.m.Path, Now: time.Now(), StepS: scrapeEvery.Seconds()}
	type inst struct {
		st     InstanceStatus
		exited time.Time
	}
	insts := map[string][]inst{}
	s.mu.Lock()
	all := s.instances()
	s.mu.Unlock()
	for _, in := range all {
		st := in.status()
		in.mu.Lock()
		exited := in.exitedAt()
		in.mu.Unlock()
		insts[st.Service] = append(insts[st.Service], inst{st, exited})
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, svc := range s.order {
		v := ServiceView{Name: svc.name, Kind: "command", Rates: o.win.services[svc.name], Instances: []InstanceView{}}
		if svc.register == RegisterSDK {
			v.Kind = "sdk"
		}
		if svc.name == "gateway" {
			v.Gateway = s.gatewayURLs()
		}
		if h := o.win.history[svc.name]; h != nil {
			v.Series = Series{Rate: clone(h.Rate), ErrorRatio: clone(h.ErrorRatio), P50: clone(h.P50), P99: clone(h.P99)}
		}
		for _, in := range insts[svc.name] {
			slot := slotName(in.st.Service, in.st.Index)
			iv := InstanceView{InstanceStatus: in.st, Slot: slot, ExitedAt: in.exited}
			if m := o.win.instances[slot]; m != nil {
				cp := *m
				iv.Metrics = &cp
			}
			v.Instances = append(v.Instances, iv)
		}
		ov.Services = append(ov.Services, v)
	}
	ov.Edges = append([]Edge{}, o.win.edges...)
	ov.Traces.Traces, ov.Traces.Bytes, ov.Traces.Dropped, ov.Traces.Version = o.traces.stats()
	return ov
}

func clone(s []num) []num { return append([]num{}, s...) }

// Traces lists the recent, slowest or failed traces (TracesRecent,
// TracesSlowest, TracesFailed), at most limit (0: all kept).
func (s *Supervisor) Traces(kind string, limit int) []TraceSummary {
	return s.col.traces.list(kind, limit)
}

// Trace returns the spans of one trace (32 hex digits), each with its
// service, instance and the instance's slot.
func (s *Supervisor) Trace(id string) (Trace, bool) {
	var key [16]byte
	if !validTraceID(id) {
		return Trace{}, false
	}
	_, _ = hex.Decode(key[:], []byte(strings.ToLower(id)))
	t, ok := s.col.traces.get(key)
	if !ok {
		return t, false
	}
	for i := range t.SpanList {
		t.SpanList[i].Slot = s.slotOfID(t.SpanList[i].Service, t.SpanList[i].Instance)
	}
	return t, true
}

// slotOfID maps an instance ID the supervisor gave (service-index-hex,
// see instance.once) to "service/index"; "" for another ID.
func (s *Supervisor) slotOfID(service, id string) string {
	rest, ok := strings.CutPrefix(id, service+"-")
	if !ok || s.byName[service] == nil {
		return ""
	}
	index, suffix, ok := strings.Cut(rest, "-")
	if n, err := strconv.Atoi(index); !ok || err != nil || n < 1 || len(suffix) != 4 {
		return ""
	}
	return service + "/" + index
}

func validTraceID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.Trim(id, "0") != ""
}

// Events returns the events after seq after, oldest first, at most limit
// of the newest (0: all kept).
func (s *Supervisor) Events(after uint64, limit int) []Event {
	return s.col.events.since(after, limit)
}

// TraceLogs returns the log lines of every instance that carry traceID.
func (s *Supervisor) TraceLogs(traceID string) []LogLine {
	if !validTraceID(traceID) {
		return nil
	}
	lines, _, _ := s.logs.matching(LogFilter{Index: -1, TraceID: strings.ToLower(traceID)}, 0)
	out := make([]LogLine, len(lines))
	for i, l := range lines {
		out[i] = LogLine{Seq: l.seq, Instance: slotName(l.service, l.index), Text: l.text}
	}
	return out
}

// Changed returns a channel closed at the next change: a scrape round, an
// instance's state, an event, spans.
func (s *Supervisor) Changed() <-chan struct{} {
	s.col.mu.Lock()
	defer s.col.mu.Unlock()
	return s.col.changed
}

// Signal sends signal (KILL, TERM, STOP, CONT, INT or HUP) to instance
// index of service, as shoal kill does, and returns its status when
// signalled. See HTTPStatus for its errors.
func (s *Supervisor) Signal(service string, index int, signal string) (InstanceStatus, error) {
	return s.kill(service, index, signal)
}

// Scale runs n instances of service, as shoal scale does; it returns once
// they serve or the removed ones stopped, or when ctx ends (the change
// goes on).
func (s *Supervisor) Scale(ctx context.Context, service string, n int) error {
	return s.scale(ctx, service, n)
}

// Restart replaces every instance of service one at a time, as shoal
// restart does.
func (s *Supervisor) Restart(ctx context.Context, service string) error {
	return s.restart(ctx, service)
}
