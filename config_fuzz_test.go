package shoal

import (
	"slices"
	"strings"
	"testing"
)

// FuzzConfigFromEnv: whatever the environment holds (a supervisor, a
// platform or a person sets it), FromEnv never panics; an error names a
// variable that is set; and otherwise every set variable is what the
// Config says, the address's precedence (SHOAL_ADDR over PORT) included.
// The input is the environment as NAME=value lines.
func FuzzConfigFromEnv(f *testing.F) {
	for _, s := range []string{
		"SHOAL_NAME=catalog\nSHOAL_ADDR=127.0.0.1:0\nSHOAL_SEEDS=127.0.0.1:7946, 127.0.0.1:7947",
		"PORT=8080\nSHOAL_DRAIN_TIMEOUT=5s\nSHOAL_H2C=on\nSHOAL_ADMISSION=off",
		"PORT=70000",
		"PORT=-1\nSHOAL_ADDR=:9",
		"SHOAL_DRAIN_TIMEOUT=5\nSHOAL_MAX_HEADER_BYTES=x",
		"SHOAL_H2C=yes",
		`SHOAL_DEPENDENCIES={"ratings":{"timeout":300000000,"max_in_flight":128}}`,
		`SHOAL_DEPENDENCIES={"ratings":{"timeot":1}}`,
		"SHOAL_DEPENDENCIES=[",
		"SHOAL_SEEDS=,,,",
		"SHOAL_READ_HEADER_TIMEOUT=-1h\nSHOAL_PREPARE_TIMEOUT=1e9h",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		env := map[string]string{}
		for line := range strings.SplitSeq(in, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && v != "" {
				env[k] = v
			}
		}
		var c Config
		err := c.FromEnv(func(k string) string { return env[k] })
		if err != nil {
			named := false
			for k := range env {
				named = named || strings.Contains(err.Error(), k)
			}
			if !named {
				t.Fatalf("FromEnv(%q): %v names none of the variables set", in, err)
			}
			return
		}
		for k, got := range map[string]string{
			EnvName: c.Name, EnvID: c.ID, EnvVersion: c.Version, EnvAdvertiseAddr: c.AdvertiseAddr,
			EnvGossipAddr: c.GossipAddr, EnvGossipProfile: c.GossipProfile, EnvTLSCertFile: c.TLSCertFile, EnvTLSKeyFile: c.TLSKeyFile,
		} {
			if v, ok := env[k]; ok && got != v {
				t.Fatalf("%s=%q gave %q", k, v, got)
			}
		}
		switch addr, port := env[EnvAddr], env[EnvPort]; {
		case addr != "" && c.Addr != addr:
			t.Fatalf("%s=%q gave addr %q", EnvAddr, addr, c.Addr)
		case addr == "" && port != "" && c.Addr != ":"+port:
			t.Fatalf("%s=%q gave addr %q", EnvPort, port, c.Addr)
		}
		if v, ok := env[EnvSeeds]; ok && !slices.Equal(c.Seeds, splitList(v)) {
			t.Fatalf("%s=%q gave %q", EnvSeeds, v, c.Seeds)
		}
		if env[EnvH2C] != "" && c.H2C != (env[EnvH2C] == "on") {
			t.Fatalf("%s=%q gave %v", EnvH2C, env[EnvH2C], c.H2C)
		}
		_ = c.Validate() // may refuse; must not panic
	})
}
