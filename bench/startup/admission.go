package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// admissionStats are the counters of /infoz's "admission" (as
// resilience.LimiterStats writes them), decoded by name so that this
// command also measures a tree from before some of them existed (an A/B
// against an older commit).
type admissionStats struct {
	Admitted, Rejected, Waited, Late, Abandoned, Overloads uint64
}

// admissionCounts sums, per service, the admission counters every SDK
// instance reports in /infoz. Instances that do not answer are left out.
func admissionCounts(sys *system) map[string]admissionStats {
	list, err := sys.ps()
	if err != nil {
		return nil
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	out := map[string]admissionStats{}
	for _, in := range list {
		addr := in.Admin // /infoz is on the admin listener; a tree from before it has none
		if addr == "" {
			addr = in.Addr
		}
		if addr == "" {
			continue
		}
		resp, err := hc.Get("http://" + addr + "/infoz")
		if err != nil {
			continue
		}
		var info struct{ Admission *admissionStats }
		err = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		if err != nil || info.Admission == nil {
			continue // not an SDK program
		}
		s := out[in.Service]
		s.Admitted += info.Admission.Admitted
		s.Rejected += info.Admission.Rejected
		s.Waited += info.Admission.Waited
		s.Late += info.Admission.Late
		s.Abandoned += info.Admission.Abandoned
		s.Overloads += info.Admission.Overloads
		out[in.Service] = s
	}
	return out
}

// admissionDelta is what each service's admission control did between two
// snapshots: requests that waited for a slot, refused at once, refused
// after waiting, given up by their caller while waiting.
type admissionDelta struct {
	service                                     string
	waited, refused, late, abandoned, overloads uint64
}

func diffAdmission(before, after map[string]admissionStats) []admissionDelta {
	var out []admissionDelta
	for svc, a := range after {
		b := before[svc]
		d := admissionDelta{
			service: svc, waited: a.Waited - b.Waited, late: a.Late - b.Late,
			abandoned: a.Abandoned - b.Abandoned, overloads: a.Overloads - b.Overloads,
		}
		// The counters are read one by one while requests come in (a
		// refusal counts as rejected before it counts as late): never
		// below zero.
		if late := d.late + d.abandoned; a.Rejected-b.Rejected > late {
			d.refused = a.Rejected - b.Rejected - late
		}
		if d.waited+d.refused+d.late+d.abandoned > 0 {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].service < out[j].service })
	return out
}

// admissionSummary renders the deltas, one clause per service.
func admissionSummary(ds []admissionDelta) string {
	if len(ds) == 0 {
		return "no request waited or was refused"
	}
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%s: %d waited, %d refused at once, %d refused after waiting, %d given up by their caller while waiting, %d overloads",
			d.service, d.waited, d.refused, d.late, d.abandoned, d.overloads))
	}
	return strings.Join(parts, "; ")
}
