package deploy

import (
	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/identity"
)

// The names that images, pods and secrets.sh share: ports, paths,
// environment variables and Secrets. They are kept in this one file so that
// a change in the SDK, discovery or identity is one edit here; the SDK's
// own names are its constants, the others are the names this package
// assumes from work in progress, marked as such.

// Ports inside every image and pod. A pod has its own network namespace,
// so every instance uses the same numbers.
const (
	// HTTPPort serves the service's API (SHOAL_ADDR); peers call it at
	// POD_IP:HTTPPort, the address each instance advertises in gossip.
	HTTPPort = 8080
	// AdminPort serves /healthz, /readyz and /metrics in plain HTTP
	// (SHOAL_ADMIN_ADDR). The service port requires mTLS, which
	// kubelet's probes and most Prometheus set-ups cannot present, so
	// probes and scrapes go here.
	AdminPort = 9090
	// GossipPort is memberlist's, over TCP and UDP.
	GossipPort = 7946
	// ProgramPort is where the program of a command: service listens (its
	// PORT), on loopback behind the agent, which serves HTTPPort.
	ProgramPort = 8081
	// PublicPort is the gateways' LoadBalancer Service port.
	PublicPort = 80
)

// The user every image runs as and every pod requires: not root, a number
// (runAsNonRoot can only check a numeric user), in /etc/passwd of the
// images this package builds from scratch.
const (
	UID      = 65532
	userName = "nonroot"
)

// Paths inside images and pods.
const (
	// WorkDir is the working directory of every container: the manifest's
	// folder as far as the instances need it. In a pod the manifest (from
	// a ConfigMap) and the files it names (from a Secret) are mounted here
	// at their paths relative to the manifest, so that relative paths in
	// env:, args: and the gateway's key_file mean what they mean under
	// shoal up.
	WorkDir = "/etc/shoal"
	// BinDir holds the binaries: the service's, and shoal for the agent.
	BinDir = "/usr/local/bin"
	// AppDir holds the files of a command: service's program, at their
	// paths relative to the manifest.
	AppDir = "/app"
	// IdentityDir is where a pod's service certificate, key and CA bundle
	// are mounted.
	IdentityDir = "/var/run/shoal/identity"
	// CACertsFile is where Go's crypto/x509 looks first on Linux.
	CACertsFile = "/etc/ssl/certs/ca-certificates.crt"
	tmpDir      = "/tmp"
)

// Environment variables set in pods.
const (
	envName          = shoal.EnvName
	envInstance      = shoal.EnvID
	envVersion       = shoal.EnvVersion
	envAddr          = shoal.EnvAddr
	envAdvertiseAddr = shoal.EnvAdvertiseAddr
	envGossipAddr    = shoal.EnvGossipAddr
	envSeeds         = shoal.EnvSeeds
	envDrainTimeout  = shoal.EnvDrainTimeout
	envDependencies  = shoal.EnvDependencies
	envGossipKey     = discovery.EnvGossipKey // a keyring: base64 keys, comma-separated, primary first
	// envDatabaseURL is store.EnvDatabaseURL (a test keeps them equal):
	// importing store would link SQLite and pgx into the shoal command.
	envDatabaseURL = "SHOAL_DATABASE_URL"
	// envAdminAddr is the SDK's separate plaintext listener for the admin
	// paths.
	envAdminAddr = shoal.EnvAdminAddr
	// envIdentity* are the paths of the instance's certificate, its key
	// and the CA bundle.
	envIdentityCert   = identity.EnvCert
	envIdentityKey    = identity.EnvKey
	envIdentityBundle = identity.EnvBundle
	// envPolicy is the manifest's authorization:, which every SDK
	// instance (and agent) enforces.
	envPolicy = shoal.EnvPolicy
	// envFaultKey is the operator's public key (KubeOptions.OperatorKey).
	envFaultKey = shoal.EnvFaultKey
	// envPodIP and envPodName come from the downward API; the others refer
	// to them as $(POD_IP) and $(POD_NAME).
	envPodIP   = "POD_IP"
	envPodName = "POD_NAME"
	// envProgramPort is the program's port, as the agent gives it.
	envProgramPort = shoal.EnvPort
)

// agentSecretEnv are the variables the agent keeps from the program it
// runs: the program needs none of the system's keys.
var agentSecretEnv = []string{envGossipKey, envIdentityCert, envIdentityKey, envIdentityBundle}

// Secrets the pods reference, named <system>-<suffix>, and their keys.
// secrets.sh (written by Export) creates every one of them; docs/DEPLOY.md
// lists them.
const (
	// secretGossip holds the gossip keyring (key gossipKey → SHOAL_GOSSIP_KEY).
	secretGossip = "gossip"
	keyGossip    = "key"
	// secretDatabase holds the PostgreSQL URL of the services with a store
	// (key url → SHOAL_DATABASE_URL); each service uses its own schema.
	secretDatabase = "database"
	keyDatabaseURL = "url"
	// secretFiles holds the files the manifest names (keys, certificates),
	// one key per file, mounted at its path under WorkDir.
	secretFiles = "files"
	// secretCA holds the CA bundle services verify each other with.
	secretCA = "identity-ca"
	keyCA    = "bundle.pem"
	// secretIdentity + <service> holds that service's certificate and key
	// (a kubernetes.io/tls Secret: keys tls.crt and tls.key).
	secretIdentity = "identity-"
	// secretPostgres holds the development database's password.
	secretPostgres = "postgres"
	keyPassword    = "password"
)
