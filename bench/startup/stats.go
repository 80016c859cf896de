package main

import "fmt"

// svcStats is one service in the running system.
type svcStats struct {
	instances int
	idleKB    int         // largest instance's median RSS while idle
	idleFile  int         // that instance's median file-backed RSS
	loadKB    int         // largest instance's RSS over the measured phases
	byPhase   map[int]int // concurrency → largest instance RSS
}

// totals are the whole system's [idle, peak] figures in KB: idle is the
// median over the idle samples, peak the sample of largest RSS under load
// (PSS: its own largest sample).
type totals struct {
	rss, pss, file, sup [2]int
}

// systemStats folds the samples per service and for the whole system.
// multi reports an instance that ran more than one process.
func (lr *loadResult) systemStats() (per map[string]*svcStats, t totals, multi bool) {
	per = map[string]*svcStats{}
	idle := map[[2]string][]int{}     // (service, index) → RSS samples
	idleFile := map[[2]string][]int{} // (service, index) → file-backed RSS samples
	var idleTot, idlePSS, idleFileTot, supIdle []int
	phaseConc := map[string]int{}
	for _, p := range lr.phases {
		phaseConc[phaseName(p.conc)] = p.conc
	}
	for _, s := range lr.samples {
		tot, pss, file := s.supRSS, s.supPSS, 0
		for _, in := range s.inst {
			tot, pss, file = tot+in.rssKB, pss+in.pssKB, file+in.fileKB
			multi = multi || in.procs > 1
			st := per[in.service]
			if st == nil {
				st = &svcStats{byPhase: map[int]int{}}
				per[in.service] = st
			}
			if s.phase == idlePhase {
				k := [2]string{in.service, fmt.Sprint(in.index)}
				idle[k] = append(idle[k], in.rssKB)
				idleFile[k] = append(idleFile[k], in.fileKB)
			}
			if c, ok := phaseConc[s.phase]; ok {
				st.loadKB = max(st.loadKB, in.rssKB)
				st.byPhase[c] = max(st.byPhase[c], in.rssKB)
			}
		}
		if s.phase == idlePhase {
			idleTot, idlePSS, supIdle = append(idleTot, tot), append(idlePSS, pss), append(supIdle, s.supRSS)
			idleFileTot = append(idleFileTot, file)
		}
		if _, ok := phaseConc[s.phase]; ok {
			if tot > t.rss[1] {
				t.rss[1], t.file[1] = tot, file
			}
			t.pss[1], t.sup[1] = max(t.pss[1], pss), max(t.sup[1], s.supRSS)
		}
	}
	for k, xs := range idle {
		st := per[k[0]]
		st.instances++
		if m := median(xs); m > st.idleKB {
			st.idleKB, st.idleFile = m, median(idleFile[k])
		}
	}
	t.rss[0], t.pss[0], t.file[0], t.sup[0] = median(idleTot), median(idlePSS), median(idleFileTot), median(supIdle)
	return per, t, multi
}
