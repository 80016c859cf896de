package gateway

// Faults at the front door. A request from outside never brings a fault in
// by itself: its Shoal-Fault header is removed here (the SDK's server
// removed it already, and honoured it only if the operator signed it; the
// transport sets it again on the way to the service from that verified
// token alone). The operator can also run a live-traffic experiment
// through the gateway: PUT ExperimentPath with an experiment token puts a
// share of the requests each into a control and an experiment cohort, and
// sends the experiment cohort's requests on with the experiment's faults;
// both cohorts are measured (CohortObserver) for the experiment to
// compare. The token is signed by the operator's key, so the path is safe
// to expose with the gateway; it expires with the token.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/chaos"
)

// ExperimentPath is where the operator starts (PUT, the experiment token
// as the body) and stops (DELETE, an experiment token of the same name as
// the body) a live-traffic experiment at one gateway instance. Only
// requests with an experiment token the gateway's Chaos verifier accepts
// are honoured; without a verifier the path is routed as any other.
const ExperimentPath = "/_shoal/experiment"

// maxExperimentBody bounds the body of an ExperimentPath request.
const maxExperimentBody = 16 << 10

// CohortObserver records each request of an experiment's cohorts, e.g.
// *telemetry.CohortMetrics. ObserveCohort is called once per such request
// as it ends, on its goroutine, from many at once: it must not block.
type CohortObserver interface {
	ObserveCohort(experiment, cohort, route string, code int, d time.Duration)
}

// ExperimentStatus is the answer of ExperimentPath.
type ExperimentStatus struct {
	Experiment string    `json:"experiment,omitempty"` // "" when none runs
	By         string    `json:"by,omitempty"`
	Share      float64   `json:"share,omitempty"`
	Faults     string    `json:"faults,omitempty"`
	Expires    time.Time `json:"expires,omitzero"`
}

// serveExperiment answers a request for ExperimentPath, and reports
// whether r was one.
func (g *Gateway) serveExperiment(w http.ResponseWriter, r *http.Request) bool {
	if g.Chaos == nil || r.URL.Path != ExperimentPath {
		return false
	}
	if r.Method != http.MethodPut && r.Method != http.MethodDelete {
		w.Header().Set("Allow", "PUT, DELETE")
		shoal.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use PUT to start an experiment, DELETE to stop it")
		return true
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxExperimentBody))
	if err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "bad_request", "reading the experiment token: "+err.Error())
		return true
	}
	e, err := g.Chaos.VerifyExperiment(strings.TrimSpace(string(body)))
	if err != nil {
		shoal.WriteError(w, http.StatusForbidden, "forbidden", "not an experiment token signed by the operator's key: "+err.Error())
		return true
	}
	cur := g.experiment.Load()
	switch r.Method {
	case http.MethodPut:
		// A token older than the running experiment's is a replay: the
		// operator has moved on.
		if cur != nil && e.Issued.Before(cur.Issued) && time.Now().Before(cur.Expires) {
			shoal.WriteError(w, http.StatusConflict, "superseded", fmt.Sprintf("experiment %q, started later, runs", cur.Name))
			return true
		}
		g.experiment.Store(e)
		g.logger().Warn("experiment started", "experiment", e.Name, "by", e.By, "share", e.Share,
			"faults", chaos.Format(e.Faults.Faults()), "expires", e.Expires)
		shoal.WriteJSON(w, http.StatusOK, experimentStatus(e))
	default:
		if cur != nil && cur.Name == e.Name && g.experiment.CompareAndSwap(cur, nil) {
			g.logger().Warn("experiment stopped", "experiment", e.Name)
		}
		g.awaitCohorts(r.Context())
		shoal.WriteJSON(w, http.StatusOK, experimentStatus(g.experiment.Load()))
	}
	return true
}

func experimentStatus(e *chaos.Experiment) ExperimentStatus {
	if e == nil {
		return ExperimentStatus{}
	}
	return ExperimentStatus{Experiment: e.Name, By: e.By, Share: e.Share, Faults: chaos.Format(e.Faults.Faults()), Expires: e.Expires}
}

// assignCohort puts a request of a running experiment in its cohort: st
// records it, and the experiment cohort's context carries the faults. A
// request with faults of its own (the operator's token) is left out.
func (g *Gateway) assignCohort(ctx context.Context, st *request) context.Context {
	e := g.experiment.Load()
	if e == nil || chaos.FromContext(ctx) != nil {
		return ctx
	}
	if time.Now().After(e.Expires) {
		g.experiment.CompareAndSwap(e, nil)
		return ctx
	}
	key := st.id
	if e.By == chaos.BySubject {
		key = st.subject
	}
	switch st.cohort = e.Cohort(key); st.cohort {
	case "":
		return ctx
	case chaos.CohortExperiment:
		ctx = chaos.NewContext(ctx, e.Faults)
	}
	st.experiment = e.Name
	if g.CohortMetrics != nil {
		g.cohortFlight.Add(1) // until observeCohort, which finish runs
	}
	return ctx
}

// observeCohort records a request of a cohort as it ends.
func (g *Gateway) observeCohort(st *request, code int, d time.Duration) {
	if st.cohort != "" && g.CohortMetrics != nil {
		g.CohortMetrics.ObserveCohort(st.experiment, st.cohort, st.label, code, d)
		g.cohortFlight.Add(-1)
	}
}

// cohortPoll is how often awaitCohorts looks whether the cohorts' requests
// in flight have ended.
const cohortPoll = 5 * time.Millisecond

// awaitCohorts waits, once an experiment stopped, until the requests its
// cohorts still had in flight are observed, so that the metrics read after
// the DELETE that stopped it count every request of the experiment. It
// gives up with ctx (the DELETE's caller gone, or the longest a gateway
// request may last, maxCohortWait).
func (g *Gateway) awaitCohorts(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, maxCohortWait)
	defer cancel()
	tick := time.NewTicker(cohortPoll)
	defer tick.Stop()
	for g.cohortFlight.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// maxCohortWait bounds awaitCohorts: a request still in flight after it
// (a stream) is not waited for.
const maxCohortWait = 30 * time.Second
