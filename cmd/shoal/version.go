package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is shoal's module version and the VCS revision it was built
// from, as the build recorded them: "v0.4.0", "(devel), revision 4a46142...
// (modified)", or "(devel)" when nothing is known.
func version(info *debug.BuildInfo, ok bool) string {
	v := "(devel)"
	if ok && info.Main.Version != "" {
		v = info.Main.Version
	}
	if !ok {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		v += ", revision " + rev
		if modified == "true" {
			v += " (modified)"
		}
	}
	return v
}

func newVersion(e env) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print shoal's version and the revision it was built from",
		Example: "  shoal version\n  shoal --version",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintln(e.stdout, "shoal "+c.Root().Version)
			return nil
		},
	}
}
