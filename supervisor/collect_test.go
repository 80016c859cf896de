package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// TestCollect runs an SDK service and a program without the SDK and checks
// what the supervisor collects for the dashboard: the instances' OTLP
// environment, their spans, scraped metrics, the Prometheus targets file,
// the event feed and log lines by trace.
func TestCollect(t *testing.T) {
	wd, _ := os.Getwd()
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	web := fmt.Sprintf(`echo '{"msg":"handled","trace_id":"%s"}'; echo 'unrelated line'; exec python3 %s`, traceID, filepath.Join(wd, "testdata", "web.py"))
	m := &Manifest{Name: "collect", Services: []*ServiceSpec{
		{Name: "hello", Command: []string{helloBin}, Register: RegisterSDK, Instances: 2},
		{Name: "web", Command: []string{"sh", "-c", web}, Instances: 1, Plaintext: true},
	}}
	r := startSupervisor(t, m)
	ctx := context.Background()
	hello := waitServing(t, r.remote, "hello", 2)
	waitServing(t, r.remote, "web", 1)
	if r.remote.OTLP == "" {
		t.Fatal("the state file names no OTLP receiver")
	}

	t.Run("instances get the OTLP endpoint and a share of the CPUs", func(t *testing.T) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", hello[0].PID))
		if err != nil {
			t.Skipf("cannot read the environment of a process: %v", err)
		}
		env := strings.Split(string(b), "\x00")
		wants := []string{
			"OTEL_EXPORTER_OTLP_ENDPOINT=" + r.remote.OTLP,
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + r.remote.OTLP + "/v1/traces",
			"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_SERVICE_NAME=hello",
			"OTEL_RESOURCE_ATTRIBUTES=service.instance.id=" + hello[0].ID,
			"OTEL_EXPORTER_OTLP_TRACES_HEADERS=authorization=Bearer%20" + r.sup.col.otlp.token(sender{"hello", hello[0].ID}),
		}
		// 3 instances in all; nothing added if the test's own environment sets it.
		wants = append(wants, maxProcsEnv(&service{spec: &ServiceSpec{}}, 3)...)
		for _, want := range wants {
			if !slices.Contains(env, want) {
				t.Errorf("environment lacks %s", want)
			}
		}
	})

	t.Run("metrics are scraped into the overview", func(t *testing.T) {
		eventually(t, 30*time.Second, "metrics of both hello instances", func() error {
			ov := r.sup.Overview()
			for _, svc := range ov.Services {
				for _, in := range svc.Instances {
					switch {
					case svc.Name == "web" && in.Metrics != nil:
						return fmt.Errorf("metrics for %s, which serves none", in.Slot)
					case svc.Name == "hello" && (in.Metrics == nil || in.Metrics.ScrapeError != "" || in.Metrics.RSS == 0):
						return fmt.Errorf("%s metrics %+v", in.Slot, in.Metrics)
					}
				}
			}
			return nil
		})
	})

	t.Run("Prometheus targets file", func(t *testing.T) {
		path := filepath.Join(m.Dir, filepath.FromSlash(TargetsFile))
		eventually(t, 30*time.Second, "both hello instances in "+TargetsFile, func() error {
			var groups []targetGroup
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, &groups); err != nil {
				return err
			}
			var got []string
			for _, g := range groups {
				if g.Labels["shoal_service"] != "hello" || g.Labels["__metrics_path__"] != "/metrics" || g.Labels["shoal_system"] != "collect" {
					return fmt.Errorf("group %+v", g)
				}
				got = append(got, g.Labels["shoal_instance"]+"@"+g.Targets[0])
			}
			want := []string{"hello/1@" + hello[0].Admin, "hello/2@" + hello[1].Admin}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("targets %v, want %v", got, want)
			}
			return nil
		})
	})

	t.Run("spans name their instance's slot", func(t *testing.T) {
		tr := exporterTo(t, r.remote.OTLP, r.sup.col.otlp.token(sender{"hello", hello[0].ID}), "hello", hello[0].ID).Tracer("t")
		_, sp := tr.Start(ctx, "GET /hello", trace.WithSpanKind(trace.SpanKindServer))
		sp.End()
		got, ok := r.sup.Trace(sp.SpanContext().TraceID().String())
		if !ok || len(got.SpanList) != 1 || got.SpanList[0].Slot != "hello/1" || got.SpanList[0].Instance != hello[0].ID {
			t.Fatalf("trace %v %+v", ok, got)
		}
		if list := r.sup.Traces(TracesRecent, 0); len(list) != 1 || list[0].TraceID != got.TraceID {
			t.Errorf("recent traces %+v", list)
		}
	})

	t.Run("log lines by trace", func(t *testing.T) {
		var b strings.Builder
		if err := r.remote.FilteredLogs(ctx, LogFilter{Index: -1, TraceID: traceID}, false, &b); err != nil {
			t.Fatal(err)
		}
		if got := b.String(); got != `web/1 | {"msg":"handled","trace_id":"`+traceID+`"}`+"\n" {
			t.Errorf("lines of the trace: %q", got)
		}
		if lines := r.sup.TraceLogs(strings.ToUpper(traceID)); len(lines) != 1 || lines[0].Instance != "web/1" {
			t.Errorf("TraceLogs = %+v", lines)
		}
		var e *Error
		if err := r.remote.FilteredLogs(ctx, LogFilter{Index: -1, TraceID: "xyz"}, false, &b); !errors.As(err, &e) || e.Status != 400 {
			t.Errorf("bad trace ID: %v", err)
		}
	})

	t.Run("event feed", func(t *testing.T) {
		after := r.sup.Events(0, 0)
		if _, err := r.sup.Signal("hello", 2, "KILL"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "hello/2 serving again", func() error {
			for _, e := range r.sup.Events(after[len(after)-1].Seq, 0) {
				if e.Kind == EventReady && e.Instance == "hello/2" {
					return nil
				}
			}
			return errors.New("no ready event")
		})
		if err := r.sup.Scale(ctx, "hello", 3); err != nil {
			t.Fatal(err)
		}
		waitServing(t, r.remote, "hello", 3)
		want := []string{
			EventSignal + " hello/2: sent SIGKILL to hello/2",
			EventExit + " hello/2: hello/2 exited (signal: killed); restarting",
			EventReady + " hello/2: hello/2 serving",
			EventScale + " : scaling hello from 2 to 3 instances",
			EventReady + " hello/3: hello/3 serving",
			EventScale + " : hello scaled to 3 instances",
		}
		eventually(t, 10*time.Second, "the events", func() error {
			var got []string
			for _, e := range r.sup.Events(after[len(after)-1].Seq, 0) {
				got = append(got, e.Kind+" "+e.Instance+": "+e.Message)
			}
			i := 0
			for _, g := range got {
				if i < len(want) && strings.HasPrefix(g, want[i]) {
					i++
				}
			}
			if i < len(want) {
				return fmt.Errorf("missing %q (in order) in\n%s", want[i], strings.Join(got, "\n"))
			}
			return nil
		})
	})

	t.Run("targets file emptied at the end", func(t *testing.T) {
		r.cancel()
		err := <-r.done
		r.done <- err
		b, rerr := os.ReadFile(filepath.Join(m.Dir, filepath.FromSlash(TargetsFile)))
		if rerr != nil || strings.TrimSpace(string(b)) != "[]" {
			t.Fatalf("targets file after Run: %q %v", b, rerr)
		}
	})
}

func TestLogFilterByTrace(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	h := newLogHub()
	for i, text := range []string{
		`{"level":"INFO","msg":"a","trace_id":"` + id + `","span_id":"00f067aa0ba902b7"}`,
		`{"msg":"b","trace_id":"11111111111111111111111111111111","note":"` + id + `"}`, // the ID elsewhere: not its trace
		`time=now level=INFO msg=c trace_id=` + id,                                      // not JSON: a substring match
		`{"msg":"d"}`,
		`{"msg":"e","request_id":"x","trace_id":"` + strings.ToUpper(id) + `"}`,
	} {
		h.add("svc", i%2+1, text)
	}
	lines, _, _ := h.matching(LogFilter{Index: -1, TraceID: id}, 0)
	var got []string
	for _, l := range lines {
		got = append(got, l.service+"/"+strconv.Itoa(l.index)+" "+l.text[:12])
	}
	want := []string{`svc/1 {"level":"IN`, `svc/1 time=now lev`} // W3C trace IDs are lower case
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines of the trace = %q, want %q", got, want)
	}
	if lines, _, _ := h.matching(LogFilter{Service: "svc", Index: 2, TraceID: id}, 0); len(lines) != 0 {
		t.Errorf("svc/2 has %d lines of the trace", len(lines))
	}
}

// TestOTelEnvOverrides: a manifest that sends a service's spans elsewhere
// (either endpoint variable) gets neither endpoint nor the token; headers
// it adds for the receiver are kept beside the token.
func TestOTelEnvOverrides(t *testing.T) {
	s := &Supervisor{col: newCollector(t.TempDir())}
	s.col.otlpURL = "http://127.0.0.1:4318"
	token := s.col.otlp.token(sender{"api", "api-1-aaaa"})
	for _, tt := range []struct {
		name    string
		env     map[string]string
		want    []string
		wantNot []string
	}{
		{"nothing set", nil, []string{
			"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:4318/v1/traces",
			"OTEL_EXPORTER_OTLP_TRACES_HEADERS=authorization=Bearer%20" + token}, nil},
		{"general endpoint elsewhere", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, nil,
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_HEADERS="}},
		{"traces endpoint elsewhere", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, nil,
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_HEADERS="}},
		{"a header added", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x-team=video"},
			[]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS=x-team=video,authorization=Bearer%20" + token}, nil},
		{"a traces header added", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x-a=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-b=2"},
			[]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS=x-b=2,authorization=Bearer%20" + token}, nil},
	} {
		env := s.otelEnv(&service{name: "api", spec: &ServiceSpec{Env: tt.env}}, "api-1-aaaa")
		for _, want := range tt.want {
			if !slices.Contains(env, want) {
				t.Errorf("%s: environment %q lacks %s", tt.name, env, want)
			}
		}
		for _, not := range tt.wantNot {
			for _, kv := range env {
				if strings.HasPrefix(kv, not) {
					t.Errorf("%s: environment has %s", tt.name, kv)
				}
			}
		}
	}
}
