package main

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/deploy"
)

func newExport(e env, file *string) *cobra.Command {
	c := &cobra.Command{
		Use:   "export",
		Short: "Write the system for another platform (kubernetes)",
		Long:  "export renders the manifest for a platform that runs it beyond one machine.",
		Example: `  shoal export kubernetes -o k8s --registry ghcr.io/acme
  kubectl apply -f k8s`,
		Args: subcommandArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usagef("export: name the platform: shoal export kubernetes -o DIR")
		},
	}
	c.AddCommand(newExportKubernetes(e, file))
	return c
}

func newExportKubernetes(e env, file *string) *cobra.Command {
	var (
		out, registry, tag string
		opts               deploy.KubeOptions
	)
	c := &cobra.Command{
		Use:   "kubernetes -o DIR",
		Short: "Write the system as plain Kubernetes objects",
		Long: `kubernetes renders the manifest into plain Kubernetes objects in DIR, for
'kubectl apply -f DIR' (or -k DIR; DIR/Kustomization lists them):

  SERVICE.yaml     a Deployment (replicas = instances) and a
                   PodDisruptionBudget per service; for the gateway also a
                   LoadBalancer Service
  gossip.yaml      the headless Service the instances find each other by
  config.yaml      the manifest, as a ConfigMap: the gateways reload their
                   routes when it changes
  postgres.yaml    with --dev-postgres: a one-pod PostgreSQL for the
                   services with store: true
  secrets.sh       creates the Secrets the pods reference (gossip key,
                   service certificates, database URL, the files the
                   manifest names): run it once, from the manifest's folder

Images are named as 'shoal image' names them (same --registry and --tag).
Pods run as a non-root user on a read-only root file system, drain before
they stop (preStop, then SIGTERM), and are replaced one at a time. See
docs/DEPLOY.md.`,
		Example: `  shoal export kubernetes -o k8s --registry ghcr.io/acme --namespace flix
  sh k8s/secrets.sh && kubectl apply -f k8s`,
		Args: exactArgs(0, "no arguments (the output folder is -o DIR)"),
		RunE: func(c *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("export kubernetes: give the output folder with -o DIR")
			}
			m, err := loadRunnable("export kubernetes", *file, "")
			if err != nil {
				return err
			}
			if opts.Release, err = release(c, e, m, tag); err != nil {
				return err
			}
			opts.Registry = registry
			files, err := deploy.Export(m, opts)
			if err != nil {
				return err
			}
			if err := deploy.WriteFiles(out, files); err != nil {
				return err
			}
			for _, name := range slices.Sorted(maps.Keys(files)) {
				fmt.Fprintln(e.stdout, filepath.Join(out, name))
			}
			fmt.Fprintf(e.stdout, "\nnext: push the images (shoal image), then\n  sh %s\n  kubectl apply -f %s\n",
				filepath.Join(out, "secrets.sh"), out)
			return nil
		},
	}
	addFileFlag(c, file, true)
	c.Flags().StringVarP(&out, "output", "o", "", "folder to write the objects to (required)")
	c.Flags().StringVarP(&opts.Namespace, "namespace", "n", "", "namespace of every object, created with the restricted Pod Security Standard (default: kubectl's current)")
	addImageFlags(c, &registry, &tag)
	c.Flags().BoolVar(&opts.DevPostgres, "dev-postgres", false, "add a one-pod PostgreSQL for the services with a store (trials, not data that matters)")
	c.Flags().StringVar(&opts.OperatorKey, "operator-key", "", "the operator's public `KEY` (shoal chaos key): pods honour the fault, experiment and profile tokens it signs (default: none)")
	return c
}
