package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/manifest"
)

// KubeOptions says how Export renders a manifest.
type KubeOptions struct {
	// Namespace of every object, and a Namespace object that enforces the
	// restricted Pod Security Standard; empty: no namespace is written
	// (kubectl's current one, or kustomize's namespace:).
	Namespace string
	// Registry and Release.Version name the images, as ImageRef does; the
	// version is also each instance's SHOAL_VERSION.
	Registry string
	Release  Release
	// DevPostgres adds a single-instance PostgreSQL StatefulSet for the
	// services with a store (development and trials: one pod, one volume,
	// no backups); secrets.sh then points the database Secret at it.
	DevPostgres bool
	// OperatorKey is the operator's public key (base64 Ed25519, as shoal
	// chaos key prints it). Every pod gets it as SHOAL_FAULT_KEY, so that
	// the fault, experiment and profile tokens its private half signs are
	// honoured; without it none is (the admin listener refuses profiles).
	OperatorKey string
}

// Timing of a pod's end. Kubernetes removes a deleted pod from its
// Services' endpoints while the pod's preStop hook runs, in parallel with
// nothing else: preStopDelay gives the endpoints (kube-proxy, cloud load
// balancers) time to stop sending new connections before SIGTERM starts
// the SDK's drain. The grace period covers the delay, the manifest's
// drain_timeout and stopMargin (process exit; the agent then stops its
// program) before kubelet sends SIGKILL.
const (
	preStopDelay = 5 * time.Second
	stopMargin   = 5 * time.Second
)

// File names in the output folder. kubectl apply -f reads .yaml files in
// name order, so the Namespace comes first. The kustomization is named
// Kustomization, a name kustomize reads and kubectl apply -f skips (it
// would refuse a kustomization.yaml as an object of an unknown kind).
const (
	namespaceFile     = "00-namespace.yaml"
	configFile        = "config.yaml"
	gossipFile        = "gossip.yaml"
	postgresFile      = "postgres.yaml"
	kustomizationFile = "Kustomization"
	secretsFile       = "secrets.sh"
)

// Export renders m as plain Kubernetes objects, returned as the files of
// a folder by name: `kubectl apply -f DIR` (or -k DIR) creates the system,
// once secrets.sh has created the Secrets the pods reference. The objects
// are a Deployment and a PodDisruptionBudget per service (SERVICE.yaml),
// the headless Service of the gossip seeds, the manifest as a ConfigMap,
// a LoadBalancer Service per gateway, and with DevPostgres a database.
func Export(m *manifest.Manifest, opts KubeOptions) (map[string][]byte, error) {
	if err := opts.Release.Check(); err != nil {
		return nil, err
	}
	if _, err := chaos.NewVerifier(opts.OperatorKey, "-"); err != nil {
		return nil, fmt.Errorf("deploy: --operator-key: %w", err)
	}
	k, err := newKube(m, opts)
	if err != nil {
		return nil, err
	}
	files := map[string][]runtime.Object{}
	if opts.Namespace != "" {
		files[namespaceFile] = []runtime.Object{k.namespace()}
	}
	if k.needConfig {
		cm, err := k.configMap()
		if err != nil {
			return nil, err
		}
		files[configFile] = []runtime.Object{cm}
	}
	files[gossipFile] = []runtime.Object{k.gossipService()}
	for _, s := range m.Services {
		objs := []runtime.Object{k.deployment(s), k.disruptionBudget(s)}
		if isGateway(s) {
			objs = append(objs, k.loadBalancer(s))
		}
		files[s.Name+".yaml"] = objs
	}
	if opts.DevPostgres {
		files[postgresFile] = k.postgres()
	}
	out := map[string][]byte{}
	for name, objs := range files {
		b, err := renderYAML(objs)
		if err != nil {
			return nil, fmt.Errorf("deploy: %s: %w", name, err)
		}
		out[name] = b
	}
	out[kustomizationFile] = kustomization(slices.Sorted(maps.Keys(files)))
	out[secretsFile] = k.secretsScript()
	return out, nil
}

// WriteFiles writes files into dir (created if need be), replacing the
// files of those names and leaving others alone.
func WriteFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dir, name), files[name], mode); err != nil {
			return fmt.Errorf("deploy: %w", err)
		}
	}
	return nil
}

// kube holds what the objects of one export share.
type kube struct {
	m          *manifest.Manifest
	opts       KubeOptions
	system     string
	manifest   string              // the manifest's file name, its key in the ConfigMap and its path under WorkDir
	files      map[string][]string // service → the files it needs from the files Secret, by path
	config     map[string]bool     // service → it reads the manifest itself
	needConfig bool
	fileKeys   map[string]string // path → key in the files Secret
}

func newKube(m *manifest.Manifest, opts KubeOptions) (*kube, error) {
	k := &kube{m: m, opts: opts, system: manifest.SystemName(m.Name), manifest: filepath.Base(m.Path),
		files: map[string][]string{}, config: map[string]bool{}, fileKeys: map[string]string{}}
	var problems []string
	check := func(what, name string, errs []string) {
		for _, e := range errs {
			problems = append(problems, fmt.Sprintf("%s %q: %s", what, name, e))
		}
	}
	if opts.Namespace != "" {
		check("namespace", opts.Namespace, validation.IsDNS1123Label(opts.Namespace))
	}
	check("Service", k.name(secretGossip), validation.IsDNS1035Label(k.name(secretGossip)))
	if opts.DevPostgres {
		check("Service", k.name(secretPostgres), validation.IsDNS1035Label(k.name(secretPostgres)))
	}
	byKey := map[string]string{}
	for _, s := range m.Services {
		check("Deployment", k.name(s.Name), validation.IsDNS1123Label(k.name(s.Name)))
		if isGateway(s) {
			check("Service", k.name(s.Name), validation.IsDNS1035Label(k.name(s.Name)))
		}
		if _, _, err := containerCommand(m, s); err != nil {
			problems = append(problems, err.Error())
		}
		for _, f := range k.serviceFiles(s) {
			if f == k.manifest {
				k.config[s.Name], k.needConfig = true, true
				continue
			}
			key := strings.ReplaceAll(f, "/", "_")
			if other, dup := byKey[key]; dup && other != f {
				problems = append(problems, fmt.Sprintf("files %s and %s would share the key %s in Secret %s; rename one", other, f, key, k.name(secretFiles)))
			}
			byKey[key], k.fileKeys[f] = f, key
			k.files[s.Name] = append(k.files[s.Name], f)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("deploy: %s cannot be named in Kubernetes:\n  %s", m.Path, strings.Join(problems, "\n  "))
	}
	return k, nil
}

// name is the object name <system>-<suffix>.
func (k *kube) name(suffix string) string { return k.system + "-" + suffix }

// serviceFiles are the files of the manifest's folder that s reads at run
// time, as paths relative to it: those its args and env values name (a
// command:'s files are in its image instead), and, when it reads the
// manifest (the gateway's --config shoal.yaml), the manifest and the key
// files its gateway: section names.
func (k *kube) serviceFiles(s *manifest.Service) []string {
	var out []string
	add := func(v string) {
		if f, ok := localFile(k.m, v); ok && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	for _, a := range s.Args {
		add(a)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Env)) {
		add(s.Env[name])
	}
	if slices.Contains(out, k.manifest) && k.m.Gateway != nil && k.m.Gateway.Auth.JWT != nil {
		add(k.m.Gateway.Auth.JWT.KeyFile)
		add(k.m.Gateway.Auth.JWT.JWKSFile)
	}
	return out
}

// isGateway reports whether s runs Shoal's gateway (shoal gateway).
func isGateway(s *manifest.Service) bool {
	return s.Build != "" && binaryName(s) == "shoal" && len(s.Args) > 0 && s.Args[0] == "gateway"
}

// servesTLS reports whether s serves HTTPS itself (a certificate given to
// the SDK), as the supervisor decides it.
func servesTLS(s *manifest.Service) bool {
	if s.Env[shoal.EnvTLSCertFile] != "" {
		return true
	}
	return slices.ContainsFunc(s.Args, func(a string) bool {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		return name == "tls-cert-file" && strings.HasPrefix(a, "-")
	})
}

// labels select the pods of a service; they never change, as a
// Deployment's selector cannot.
func (k *kube) labels(service string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":    service,
		"app.kubernetes.io/part-of": k.system,
	}
}

// meta is the metadata of an object of the system, for service ("" for
// the system's own objects).
func (k *kube) meta(name, service string) metav1.ObjectMeta {
	l := map[string]string{"app.kubernetes.io/part-of": k.system, "app.kubernetes.io/managed-by": "shoal"}
	if service != "" {
		l["app.kubernetes.io/name"] = service
	}
	return metav1.ObjectMeta{Name: name, Namespace: k.opts.Namespace, Labels: l}
}

// namespace enforces the restricted Pod Security Standard: every pod
// here runs as it must.
func (k *kube) namespace() *corev1.Namespace {
	ns := &corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: k.opts.Namespace, Labels: map[string]string{
		"app.kubernetes.io/part-of":          k.system,
		"app.kubernetes.io/managed-by":       "shoal",
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}}}
	return ns
}

// configMap holds the manifest: the gateways read their routes from it
// and reload them when it changes (kubelet swaps the mounted file).
func (k *kube) configMap() (*corev1.ConfigMap, error) {
	data, err := os.ReadFile(k.m.Path)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	return &corev1.ConfigMap{TypeMeta: typeMeta("v1", "ConfigMap"), ObjectMeta: k.meta(k.name("config"), ""),
		Data: map[string]string{k.manifest: string(data)}}, nil
}

// gossipService is the seeds' DNS name: headless, so that it resolves to
// every pod of the system, and listing pods before they are ready, since
// an instance joins gossip before it is ready.
func (k *kube) gossipService() *corev1.Service {
	return &corev1.Service{TypeMeta: typeMeta("v1", "Service"), ObjectMeta: k.meta(k.name(secretGossip), ""),
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 map[string]string{"app.kubernetes.io/part-of": k.system},
			Ports: []corev1.ServicePort{
				{Name: "gossip", Protocol: corev1.ProtocolTCP, Port: GossipPort, TargetPort: intstr.FromString("gossip")},
				{Name: "gossip-udp", Protocol: corev1.ProtocolUDP, Port: GossipPort, TargetPort: intstr.FromString("gossip-udp")},
			},
		}}
}

// seeds is SHOAL_SEEDS: the headless Service's name, which discovery
// resolves to every address behind it. The short name works in any
// namespace the objects are applied to.
func (k *kube) seeds() string { return fmt.Sprintf("%s:%d", k.name(secretGossip), GossipPort) }

// loadBalancer exposes a gateway. externalTrafficPolicy Local keeps the
// client's address (the gateway's per-client rate limits key on it) and
// sends traffic only to nodes that run a gateway pod.
func (k *kube) loadBalancer(s *manifest.Service) *corev1.Service {
	port, name := int32(PublicPort), "http"
	if servesTLS(s) {
		port, name = 443, "https"
	}
	return &corev1.Service{TypeMeta: typeMeta("v1", "Service"), ObjectMeta: k.meta(k.name(s.Name), s.Name),
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Selector:              k.labels(s.Name),
			Ports:                 []corev1.ServicePort{{Name: name, Protocol: corev1.ProtocolTCP, Port: port, TargetPort: intstr.FromString("http")}},
		}}
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

// renderYAML writes objs as one YAML stream. Fields the API server owns
// (status) are left out.
func renderYAML(objs []runtime.Object) ([]byte, error) {
	var b bytes.Buffer
	for i, o := range objs {
		raw, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		var fields map[string]any
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, err
		}
		delete(fields, "status")
		y, err := yaml.Marshal(fields)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

// kustomization lists the object files for kubectl apply -k.
func kustomization(files []string) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by shoal export kubernetes: kubectl apply -k DIR applies the\n# same objects as kubectl apply -f DIR. Create the Secrets first: secrets.sh.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n")
	for _, f := range files {
		b.WriteString("  - " + f + "\n")
	}
	return b.Bytes()
}
