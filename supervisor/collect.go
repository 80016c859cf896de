package supervisor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// What the supervisor sees of the system it runs, for the dashboard: the
// instances' spans (an OTLP/HTTP receiver on loopback whose address every
// instance gets in OTEL_EXPORTER_OTLP_ENDPOINT), their metrics (scraped
// every scrapeEvery into rolling windows), an event feed, and a Prometheus
// targets file so that a user's own Prometheus can scrape the system.

// scrapeTimeout bounds one scrape; a frozen instance costs no more.
const scrapeTimeout = 1500 * time.Millisecond

// scrapeParallel bounds the scrapes in flight at once.
const scrapeParallel = 8

// tracedCallsFor is how long a call between services seen in a trace
// stays on the graph.
const tracedCallsFor = 5 * time.Minute

// collector holds what the supervisor collects. Its parts are safe for
// concurrent use; its loop (run) is started by startCollector and owned by
// Run.
type collector struct {
	traces  *traceStore
	events  *eventRing
	targets targetsWriter
	scrapes *http.Client

	otlpURL string    // base URL of the OTLP/HTTP receiver, set before instances start
	otlp    *otlpAuth // who may send it spans
	dashURL string    // the dashboard's URL with its token; "" without a dashboard

	mu      sync.Mutex // guards the fields below
	win     *windows
	changed chan struct{} // closed and replaced on every change
}

func newCollector(dir string) *collector {
	o := &collector{
		traces:  newTraceStore(defaultTraceLimits),
		otlp:    newOTLPAuth(),
		events:  &eventRing{},
		targets: targetsWriter{path: filepath.Join(dir, filepath.FromSlash(TargetsFile))},
		// Scrapes go to the instances' admin listeners, in plain HTTP.
		// No compression: on loopback gzip costs CPU and saves nothing.
		scrapes: &http.Client{Timeout: scrapeTimeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: 1, IdleConnTimeout: 3 * scrapeEvery, DisableCompression: true}},
		win:     newWindows(),
		changed: make(chan struct{}),
	}
	o.events.notify = o.bump
	return o
}

// bump wakes everyone waiting on Changed.
func (o *collector) bump() {
	o.mu.Lock()
	close(o.changed)
	o.changed = make(chan struct{})
	o.mu.Unlock()
}

// startCollector opens the OTLP receiver and, if Options.Dashboard is set,
// the dashboard's listener (both on loopback), and starts the scrape loop.
// stop closes them, waits for the loop and empties the targets file.
func (s *Supervisor) startCollector(ctx context.Context) (stop func(), err error) {
	o := s.col
	otlpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("supervisor: OTLP receiver: %w", err)
	}
	o.otlpURL = "http://" + otlpLn.Addr().String()
	otlpSrv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: otlpHandler(o.traces, o.otlp, o.bump)}
	servers := []*http.Server{otlpSrv}
	listeners := []net.Listener{otlpLn}
	if s.opts.Dashboard != nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			otlpLn.Close()
			return nil, fmt.Errorf("supervisor: dashboard: %w", err)
		}
		token := randomHex(16)
		o.dashURL = "http://" + ln.Addr().String() + "/?token=" + token
		servers = append(servers, &http.Server{Handler: s.opts.Dashboard(s, token), ReadHeaderTimeout: 5 * time.Second})
		listeners = append(listeners, ln)
	}
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() { _ = srv.Serve(listeners[i]) }) // owned by stop: ends with srv.Close
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { s.collectLoop(lctx) }) // owned by stop: ends with cancel
	return func() {
		cancel()
		for _, srv := range servers {
			srv.Close() // cuts the dashboard's event streams too
		}
		wg.Wait()
		o.scrapes.CloseIdleConnections()
		if err := o.targets.write([]targetGroup{}); err != nil {
			s.log.Warn("cannot empty the Prometheus targets file", "err", err)
		}
	}, nil
}

// collectLoop scrapes every instance each scrapeEvery until ctx ends.
func (s *Supervisor) collectLoop(ctx context.Context) {
	tick := time.NewTicker(scrapeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.collectRound(ctx)
	}
}

// collectRound scrapes every instance once, updates the windows, the
// event feed and the targets file.
func (s *Supervisor) collectRound(ctx context.Context) {
	o := s.col
	st := s.ps()
	got := make([]scraped, len(st))
	var wg sync.WaitGroup
	sem := make(chan struct{}, scrapeParallel)
	for i, in := range st {
		got[i].st = in
		scheme, hostport, path, ok := s.metricsTarget(in)
		if !ok {
			continue
		}
		if in.PID == 0 || in.State == StateStarting {
			got[i].s = &sample{at: time.Now(), err: "not running"}
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			smp := scrapeOne(ctx, o.scrapes, scheme+"://"+hostport+path)
			got[i].s = &smp
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	names := s.serviceNames()
	calls := o.traces.callsSince(now.Add(-tracedCallsFor))
	o.mu.Lock()
	events := o.win.round(now, names, got, calls)
	o.mu.Unlock()
	for _, e := range events {
		o.events.add(e)
	}
	o.traces.expire(now)
	if err := o.targets.write(s.targetGroups(st)); err != nil {
		s.log.Warn("cannot write the Prometheus targets file", "err", err)
	}
	o.bump()
}

// otelEnv is the OpenTelemetry environment of an instance: export spans to
// the supervisor's receiver (OTLP/HTTP, protobuf) with the instance's
// token, as service name with the instance ID. A variable the manifest
// sets for the service wins: the user may send that service's spans
// elsewhere (either endpoint variable: then neither is set, nor the token,
// which would go there too). Headers the manifest adds are kept, merged
// with the token into the traces variable (which replaces the general one,
// and comes after the manifest's in the environment, so it wins).
func (s *Supervisor) otelEnv(svc *service, id string) []string {
	var env []string
	set := func(k, v string) {
		if _, ok := svc.spec.Env[k]; !ok {
			env = append(env, k+"="+v)
		}
	}
	_, endpoint := svc.spec.Env["OTEL_EXPORTER_OTLP_ENDPOINT"]
	_, tracesEndpoint := svc.spec.Env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
	if !endpoint && !tracesEndpoint {
		extra := cmp.Or(svc.spec.Env["OTEL_EXPORTER_OTLP_TRACES_HEADERS"], svc.spec.Env["OTEL_EXPORTER_OTLP_HEADERS"])
		env = append(env,
			"OTEL_EXPORTER_OTLP_ENDPOINT="+s.col.otlpURL,
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+s.col.otlpURL+otlpTracesPath,
			"OTEL_EXPORTER_OTLP_TRACES_HEADERS="+s.col.otlp.headerEnv(sender{svc.name, id}, extra))
	}
	set("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	set("OTEL_SERVICE_NAME", svc.name)
	set("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id="+id)
	return env
}

// exitedAt is when the slot's process last exited unasked (zero if
// never); in.mu is held.
func (in *instance) exitedAt() time.Time {
	if n := len(in.crashes); n > 0 {
		return in.crashes[n-1]
	}
	return time.Time{}
}

// stateChanged turns an instance's state change, or an unasked exit
// (recorded after the state changed to crashed), into an event. It is
// called by instance.set after the change, without locks held.
func (s *Supervisor) stateChanged(in *instance, from, to string, exited bool) {
	st := in.status()
	name := in.name()
	e := Event{Service: in.svc.name, Instance: name}
	switch {
	case exited:
		e.Kind, e.Level = EventExit, "error"
		e.Message = fmt.Sprintf("%s exited (%s); restarting", name, st.LastExit)
	case to == StateServing && from == StateUnhealthy:
		e.Kind, e.Message = EventHealthy, name+" is healthy again"
	case to == StateServing:
		e.Kind, e.Message = EventReady, fmt.Sprintf("%s serving (pid %d, %s)", name, st.PID, st.ID)
		if st.Restarts > 0 {
			e.Message += fmt.Sprintf(" after %d restart(s)", st.Restarts)
		}
	case to == StateUnhealthy:
		e.Kind, e.Level = EventUnhealthy, "warn"
		e.Message = fmt.Sprintf("%s failed %d health checks in a row (GET %s)", name, unhealthyAfter, in.svc.health)
	case to == StateDraining:
		e.Kind, e.Message = EventStop, name+" draining"
	case to == StateStopped:
		e.Kind, e.Message = EventStop, name+" stopped"
	default:
		return
	}
	s.col.events.add(e)
}

// event adds an event of the supervisor's own (signals, scale, restarts).
func (s *Supervisor) event(kind, level, service, instance, format string, args ...any) {
	s.col.events.add(Event{Kind: kind, Level: level, Service: service, Instance: instance, Message: fmt.Sprintf(format, args...)})
}

// Gateway log messages that mean a reload (see gateway.Reloader).
var reloadMessages = []struct{ msg, level, says string }{
	{"gateway config loaded", "info", "loaded its routes from %s"},
	{"gateway config refused", "error", "refused the routes in %s and keeps the ones in use"},
	{"gateway config unreadable", "warn", "cannot read %s and keeps the routes in use"},
}

// noticeLine turns log lines that report an event (a gateway reload) into
// events. It runs for every line an instance writes, so the common case is
// one substring search.
func (s *Supervisor) noticeLine(svc *service, index int, text string) {
	if !strings.Contains(text, "gateway config") {
		return
	}
	line := struct {
		Msg  string `json:"msg"`
		File string `json:"file"`
		Err  string `json:"err"`
	}{}
	if json.Unmarshal([]byte(text), &line) != nil {
		return
	}
	for _, r := range reloadMessages {
		if line.Msg == r.msg {
			name := svc.name + "/" + strconv.Itoa(index)
			msg := name + " " + fmt.Sprintf(r.says, line.File)
			if line.Err != "" {
				msg += ": " + line.Err
			}
			s.event(EventReload, r.level, svc.name, name, "%s", msg)
			return
		}
	}
}

// HTTPStatus is the status code that suits err from a control operation
// (Signal, Scale, Restart): 400 for a bad request, 404 for an unknown
// service or instance, 409 for a conflict (not running, crash loop), 503
// while starting, 500 otherwise. code is a short machine-readable name.
func HTTPStatus(err error) (status int, code string) {
	var oe *opError
	if errors.As(err, &oe) {
		return oe.status, oe.code
	}
	return http.StatusInternalServerError, "internal"
}

// opEvent reports the end of a scale or a restart: done, or its error.
func (s *Supervisor) opEvent(kind, service string, err error, format string, args ...any) {
	if err != nil {
		s.event(kind, "error", service, "", "%s: %v", fmt.Sprintf(format, args...)+" failed", err)
		return
	}
	s.event(kind, "info", service, "", format, args...)
}
