// Package deploy takes a Shoal system beyond `shoal up`: it builds a
// container image per service without a container daemon (`shoal image`),
// renders the manifest into plain Kubernetes objects (`shoal export
// kubernetes`), and runs programs that do not use the SDK as instances
// inside their own containers (`shoal agent`, the supervisor's agent role
// for a pod).
//
// Images (BuildImages) are built the way ko builds them: each build:
// package is compiled statically (CGO_ENABLED=0, with the supervisor's
// release flags, through supervisor.GoBuild) and laid on a base of a
// non-root user, CA certificates and a few folders: no shell, no package
// manager. A command: service's image is a base image the user gives (it
// holds the program's runtime) with the program's files and the shoal
// binary added; it runs under the agent. Every file and label carries one
// time (SOURCE_DATE_EPOCH or the commit's), so the same sources give the
// same digests. Images are written as OCI image layouts or docker-archive
// tarballs, for crane, skopeo, docker load or podman load.
//
// The Kubernetes objects (Export) are a Deployment and a
// PodDisruptionBudget per service, a headless Service that gossip seeds
// resolve to every pod, a LoadBalancer Service for the gateways, the
// manifest as a ConfigMap (the gateways hot-reload its routes), and a
// script that creates the Secrets the pods reference (keys and
// certificates are never written into the objects). names.go holds every
// port, path, variable and Secret name they share. docs/DEPLOY.md is the
// user's guide.
//
// The package is linked into the shoal command only, never into services:
// it brings go-containerregistry and the Kubernetes API types.
package deploy
