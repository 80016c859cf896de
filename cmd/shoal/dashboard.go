package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func newDashboard(e env, file *string) *cobra.Command {
	c := &cobra.Command{
		Use:   "dashboard",
		Short: "Print the URL of the running system's dashboard",
		Long: `dashboard prints the URL of the dashboard the running shoal up serves on
loopback, as shoal up printed it at startup. The URL carries a secret token:
opening it in a browser signs that browser in for this shoal up; anyone who
has it can kill and scale instances.`,
		Example: `  shoal dashboard
  xdg-open "$(shoal dashboard)"`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			r, err := remote("dashboard", *file)
			if err != nil {
				return err
			}
			if r.Dashboard == "" {
				return errors.New("dashboard: the running shoal up serves no dashboard (it was started by a version without one)")
			}
			fmt.Fprintln(e.stdout, r.Dashboard)
			return nil
		},
	}
	addFileFlag(c, file, true)
	return c
}
