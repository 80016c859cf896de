package main

import (
	"runtime/debug"
	"testing"
)

func TestVersion(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{nil, false, "(devel)"},
		{&debug.BuildInfo{}, true, "(devel)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}, true, "v0.4.0"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs", "git", "vcs.revision", "4a46142f", "vcs.modified", "true")}, true,
			"(devel), revision 4a46142f (modified)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v0.4.1-0.20261205150000-4a46142f0000"}, Settings: vcs("vcs.revision", "4a46142f", "vcs.modified", "false")}, true,
			"v0.4.1-0.20261205150000-4a46142f0000, revision 4a46142f"},
	} {
		if got := version(tc.info, tc.ok); got != tc.want {
			t.Errorf("version(%+v) = %q, want %q", tc.info, got, tc.want)
		}
	}
	want := "shoal " + version(debug.ReadBuildInfo()) + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		if code, out, errOut := runCLI(t, args...); code != 0 || out != want || errOut != "" {
			t.Errorf("shoal %s: status %d, stdout %q, stderr %q; want 0 and %q", args[0], code, out, errOut, want)
		}
	}
}
