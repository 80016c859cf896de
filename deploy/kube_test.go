package deploy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/kubernetes")

// objects are the decoded objects of an export.
type objects struct {
	namespaces   []*corev1.Namespace
	configMaps   map[string]*corev1.ConfigMap
	services     map[string]*corev1.Service
	deployments  map[string]*appsv1.Deployment
	budgets      map[string]*policyv1.PodDisruptionBudget
	statefulSets map[string]*appsv1.StatefulSet
	count        int
}

// decodeStrict decodes one YAML document into the API type of its kind;
// a field the type does not have, or a kind this package does not write,
// is an error.
func decodeStrict(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		obj = &corev1.Namespace{}
	case "v1 ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1 Service":
		obj = &corev1.Service{}
	case "apps/v1 Deployment":
		obj = &appsv1.Deployment{}
	case "apps/v1 StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "policy/v1 PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	default:
		return nil, fmt.Errorf("unexpected kind %q of %q", tm.Kind, tm.APIVersion)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// decodeAll decodes every object of the .yaml files strictly.
func decodeAll(t *testing.T, files map[string][]byte) *objects {
	t.Helper()
	o := &objects{configMaps: map[string]*corev1.ConfigMap{}, services: map[string]*corev1.Service{},
		deployments: map[string]*appsv1.Deployment{}, budgets: map[string]*policyv1.PodDisruptionBudget{},
		statefulSets: map[string]*appsv1.StatefulSet{}}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for i, doc := range strings.Split(string(files[name]), "\n---\n") {
			obj, err := decodeStrict([]byte(doc))
			if err != nil {
				t.Fatalf("%s, object %d: %v", name, i+1, err)
			}
			o.count++
			switch v := obj.(type) {
			case *corev1.Namespace:
				o.namespaces = append(o.namespaces, v)
			case *corev1.ConfigMap:
				o.configMaps[v.Name] = v
			case *corev1.Service:
				o.services[v.Name] = v
			case *appsv1.Deployment:
				o.deployments[v.Name] = v
			case *appsv1.StatefulSet:
				o.statefulSets[v.Name] = v
			case *policyv1.PodDisruptionBudget:
				o.budgets[v.Name] = v
			}
		}
	}
	return o
}

// pods are the pod templates of the objects, by workload name.
func (o *objects) pods() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for n, d := range o.deployments {
		out[n] = &d.Spec.Template
	}
	for n, s := range o.statefulSets {
		out[n] = &s.Spec.Template
	}
	return out
}

// referencedSecrets lists the Secrets the pods use, with the keys they use.
func referencedSecrets(o *objects) map[string][]string {
	out := map[string][]string{}
	add := func(name string, keys ...string) {
		for _, k := range keys {
			if !slices.Contains(out[name], k) {
				out[name] = append(out[name], k)
			}
		}
		if _, ok := out[name]; !ok {
			out[name] = nil
		}
	}
	for _, p := range o.pods() {
		for _, c := range p.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					add(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
				}
			}
		}
		for _, v := range p.Spec.Volumes {
			var projections []corev1.VolumeProjection
			if v.Projected != nil {
				projections = v.Projected.Sources
			}
			if v.Secret != nil {
				projections = append(projections, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: v.Secret.SecretName}, Items: v.Secret.Items}})
			}
			for _, src := range projections {
				if src.Secret == nil {
					continue
				}
				add(src.Secret.Name)
				for _, it := range src.Secret.Items {
					add(src.Secret.Name, it.Key)
				}
				if len(src.Secret.Items) == 0 { // the whole Secret: a tls one
					add(src.Secret.Name, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
				}
			}
		}
	}
	return out
}

func exportFlix(t *testing.T, opts KubeOptions) (map[string][]byte, *objects) {
	t.Helper()
	files, err := Export(flix(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return files, decodeAll(t, files)
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

func portNamed(c corev1.Container, name string) *corev1.ContainerPort {
	for i, p := range c.Ports {
		if p.Name == name {
			return &c.Ports[i]
		}
	}
	return nil
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// The objects of the reference system keep the promises of docs/DEPLOY.md.
func TestExportFlixInvariants(t *testing.T) {
	m := flix(t)
	opts := KubeOptions{Namespace: "flix", Registry: "registry.example/acme", Release: testRelease, DevPostgres: true}
	files, o := exportFlix(t, opts)

	if len(o.namespaces) != 1 || o.namespaces[0].Name != "flix" || o.namespaces[0].Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespaces %+v, want flix enforcing the restricted Pod Security Standard", o.namespaces)
	}
	gossip := o.services["flix-gossip"]
	if gossip == nil || gossip.Spec.ClusterIP != corev1.ClusterIPNone || !gossip.Spec.PublishNotReadyAddresses {
		t.Fatalf("gossip Service %+v: want headless, listing pods before they are ready", gossip)
	}
	gossipSel := labels.SelectorFromSet(gossip.Spec.Selector)
	drain := m.DrainTimeout
	keyFile, err := os.ReadFile(filepath.Join("..", "examples/flix/keys/jwt-dev.key"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if bytes.Contains(b, bytes.TrimSpace(keyFile)) || bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a private key", name)
		}
	}

	for _, s := range m.Services {
		t.Run(s.Name, func(t *testing.T) {
			d := o.deployments["flix-"+s.Name]
			if d == nil {
				t.Fatal("no Deployment")
			}
			if *d.Spec.Replicas != int32(s.Instances) {
				t.Errorf("replicas %d, want instances %d", *d.Spec.Replicas, s.Instances)
			}
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("selector %v does not select its pods %v", d.Spec.Selector, d.Spec.Template.Labels)
			}
			if !gossipSel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Error("pods are not behind the gossip Service")
			}
			ru := d.Spec.Strategy.RollingUpdate
			if ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.IntValue() < 1 {
				t.Errorf("rolling update %+v: want maxUnavailable 0, a surge", ru)
			}
			pdb := o.budgets["flix-"+s.Name]
			if pdb == nil || pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
				t.Errorf("PodDisruptionBudget %+v: want maxUnavailable 1", pdb)
			} else if ps, _ := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); !ps.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Error("the PodDisruptionBudget does not select the pods")
			}

			p := d.Spec.Template.Spec
			if len(p.Containers) != 1 || len(p.InitContainers) != 0 {
				t.Fatalf("%d containers, %d init containers: want one, no sidecar", len(p.Containers), len(p.InitContainers))
			}
			c := p.Containers[0]
			if want := ImageRef("registry.example/acme", "flix", s.Name, "v1.2.3"); c.Image != want {
				t.Errorf("image %s, want %s", c.Image, want)
			}
			_, wantArgs, _ := containerCommand(m, s)
			if !slices.Equal(c.Args, wantArgs) || c.Command != nil {
				t.Errorf("command %q args %q, want the image's entrypoint with %q", c.Command, c.Args, wantArgs)
			}

			// Security.
			sc, psc := c.SecurityContext, p.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
				psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod security %+v: want a non-root user and seccomp RuntimeDefault", psc)
			}
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil ||
				*sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("container security %+v: want a read-only root, no escalation, no capabilities", sc)
			}
			if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
				t.Error("the service account token is mounted")
			}
			aff := p.Affinity
			if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
				t.Fatalf("affinity %+v: want preferred anti-affinity", aff)
			}
			term := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
			if ts, _ := metav1.LabelSelectorAsSelector(term.LabelSelector); term.TopologyKey != corev1.LabelHostname || !ts.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("anti-affinity %+v: want its own pods apart across nodes", term)
			}

			// Probes on the admin port, and the drain.
			admin := portNamed(c, "admin")
			if admin == nil || admin.ContainerPort != AdminPort {
				t.Fatalf("admin port %+v", admin)
			}
			for what, pr := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
				if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != what || pr.HTTPGet.Port.String() != "admin" {
					t.Errorf("probe of %s: %+v", what, pr)
				}
			}
			if a := d.Spec.Template.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != fmt.Sprint(AdminPort) || a["prometheus.io/path"] != "/metrics" {
				t.Errorf("scrape annotations %v", a)
			}
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds < 1 {
				t.Fatalf("preStop %+v: want a pause for the endpoints to hear", c.Lifecycle)
			}
			pause := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			if grace := time.Duration(*p.TerminationGracePeriodSeconds) * time.Second; grace < pause+drain+2*time.Second {
				t.Errorf("termination grace %v < preStop %v + drain_timeout %v + a margin", grace, pause, drain)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().Cmp(*c.Resources.Requests.Memory()) < 0 {
				t.Errorf("resources %+v", c.Resources)
			}

			// Environment: defined before use, addresses from the pod, keys
			// from Secrets.
			defined := map[string]bool{}
			for _, e := range c.Env {
				for _, ref := range envRef.FindAllStringSubmatch(e.Value, -1) {
					if !defined[ref[1]] {
						t.Errorf("%s refers to $(%s) before it is defined", e.Name, ref[1])
					}
				}
				defined[e.Name] = true
			}
			env := envOf(c)
			if e := env[envPodIP]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "status.podIP" {
				t.Errorf("POD_IP: %+v", e)
			}
			want := map[string]string{
				envName: s.Name, envAdvertiseAddr: "$(POD_IP):8080", envGossipAddr: "$(POD_IP):7946",
				envSeeds: gossip.Name + ":" + fmt.Sprint(gossip.Spec.Ports[0].Port), envAdminAddr: fmt.Sprintf(":%d", AdminPort),
				envAddr: fmt.Sprintf(":%d", portNamed(c, "http").ContainerPort), envDrainTimeout: drain.String(),
			}
			for k, v := range want {
				if env[k].Value != v {
					t.Errorf("%s=%q, want %q", k, env[k].Value, v)
				}
			}
			for _, k := range []string{envGossipKey, envDatabaseURL} {
				if e, ok := env[k]; ok && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
					t.Errorf("%s is not from a Secret: %+v", k, e)
				}
			}
			if _, ok := env[envGossipKey]; !ok {
				t.Error("no gossip key")
			}
			if _, ok := env[envDatabaseURL]; ok != s.Store {
				t.Errorf("database URL given: %v; the service has a store: %v", ok, s.Store)
			}
			checkMounts(t, o, s, p, c)
		})
	}

	gw := o.services["flix-gateway"]
	if gw == nil || gw.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Fatalf("gateway Service %+v: want a LoadBalancer", gw)
	}
	if d := o.deployments["flix-gateway"]; !labels.SelectorFromSet(gw.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) ||
		portNamed(d.Spec.Template.Spec.Containers[0], gw.Spec.Ports[0].TargetPort.String()) == nil {
		t.Errorf("the LoadBalancer does not reach the gateways: %+v", gw.Spec)
	}
	if n := len(o.services); n != 3 { // gossip, gateway, postgres
		t.Errorf("%d Services: %v", n, slices.Sorted(maps.Keys(o.services)))
	}

	// The manifest travels whole, and it parses as the gateway will read it.
	cm := o.configMaps["flix-config"]
	want, _ := os.ReadFile(m.Path)
	if cm == nil || cm.Data["shoal.yaml"] != string(want) {
		t.Fatal("the ConfigMap does not hold shoal.yaml as it is")
	}
	if _, err := manifest.ParseGateway("shoal.yaml", []byte(cm.Data["shoal.yaml"])); err != nil {
		t.Error(err)
	}

	pg := o.statefulSets["flix-postgres"]
	if pg == nil || o.services["flix-postgres"] == nil || pg.Spec.Template.Spec.SecurityContext.RunAsUser == nil || *pg.Spec.Template.Spec.SecurityContext.RunAsUser == 0 {
		t.Errorf("development database: %+v", pg)
	}
	if envDatabaseURL != store.EnvDatabaseURL {
		t.Errorf("the pods set %s, the store reads %s", envDatabaseURL, store.EnvDatabaseURL)
	}
}

// checkMounts: every mount names a volume; the manifest and its files are
// where the instance's args and env look for them (relative to WorkDir);
// keys and certificates come from Secrets.
func checkMounts(t *testing.T, o *objects, s *manifest.Service, p corev1.PodSpec, c corev1.Container) {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range p.Volumes {
		vols[v.Name] = v
	}
	mounted := map[string]string{} // path in the container → "configmap:key" or "secret:name/key"
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			t.Errorf("mount of unknown volume %s", vm.Name)
			continue
		}
		if v.Projected == nil {
			continue
		}
		if !vm.ReadOnly {
			t.Errorf("volume %s is mounted writable", vm.Name)
		}
		for _, src := range v.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				cm := o.configMaps[src.ConfigMap.Name]
				for _, it := range src.ConfigMap.Items {
					if cm == nil || cm.Data[it.Key] == "" {
						t.Errorf("ConfigMap %s has no key %s", src.ConfigMap.Name, it.Key)
					}
					mounted[path.Join(vm.MountPath, it.Path)] = "configmap:" + it.Key
				}
			case src.Secret != nil:
				for _, it := range src.Secret.Items {
					mounted[path.Join(vm.MountPath, it.Path)] = "secret:" + src.Secret.Name + "/" + it.Key
				}
				if len(src.Secret.Items) == 0 {
					for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
						mounted[path.Join(vm.MountPath, k)] = "secret:" + src.Secret.Name + "/" + k
					}
				}
			}
		}
	}
	if c.WorkingDir != WorkDir {
		t.Errorf("working dir %s", c.WorkingDir)
	}
	env := envOf(c)
	for _, k := range []string{envIdentityCert, envIdentityKey, envIdentityBundle} {
		if !strings.HasPrefix(mounted[env[k].Value], "secret:") {
			t.Errorf("%s=%s is not a mounted Secret", k, env[k].Value)
		}
	}
	// Every file the manifest names for the service is there, from the
	// right place.
	names := slices.Clone(s.Args)
	for _, v := range s.Env {
		names = append(names, v)
	}
	for _, n := range names {
		if fi, err := os.Stat(filepath.Join("..", n)); err != nil || !fi.Mode().IsRegular() {
			continue // not a file
		}
		got := mounted[path.Join(WorkDir, n)]
		switch {
		case n == "shoal.yaml" && got != "configmap:shoal.yaml":
			t.Errorf("%s comes from %q, want the ConfigMap", n, got)
		case n != "shoal.yaml" && !strings.HasPrefix(got, "secret:"):
			t.Errorf("%s comes from %q, want a Secret", n, got)
		}
	}
	if isGateway(s) {
		if got := mounted[path.Join(WorkDir, "examples/flix/keys/jwt-dev.pub")]; !strings.HasPrefix(got, "secret:") {
			t.Errorf("the gateway's JWT key file comes from %q", got)
		}
	}
	if tmp := slices.IndexFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.MountPath == tmpDir }); tmp < 0 {
		t.Error("no writable /tmp")
	}
}

// An unknown field is an error of the strict decode: the tests above would
// catch a misspelt field in what Export writes.
func TestDecodeStrictRefusesUnknownFields(t *testing.T) {
	files, _ := exportFlix(t, KubeOptions{Release: testRelease})
	doc := strings.SplitN(string(files["catalog.yaml"]), "\n---\n", 2)[0]
	if _, err := decodeStrict([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(doc, "  replicas: 3", "  replicas: 3\n  replicaz: 3", 1)
	if bad == doc {
		t.Fatal("no replicas: line to change")
	}
	if _, err := decodeStrict([]byte(bad)); err == nil || !strings.Contains(err.Error(), "replicaz") {
		t.Fatalf("unknown field: %v", err)
	}
}

// The Kustomization lists every object file, and kustomize (kubectl
// kustomize, offline) builds the same objects from it.
func TestKustomization(t *testing.T) {
	files, o := exportFlix(t, KubeOptions{Namespace: "flix", Release: testRelease, DevPostgres: true})
	k := string(files[kustomizationFile])
	for name := range files {
		if strings.HasSuffix(name, ".yaml") && !strings.Contains(k, "\n  - "+name+"\n") {
			t.Errorf("%s is not in the Kustomization", name)
		}
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skipf("kubectl is not installed, so kustomize is not tried: %v", err)
	}
	dir := t.TempDir()
	if err := WriteFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	built := decodeAll(t, map[string][]byte{"all.yaml": out})
	if built.count != o.count {
		t.Errorf("kustomize built %d objects, the files hold %d", built.count, o.count)
	}
}

// Golden files of the reference system, so that a change to the objects is
// seen in review. go test ./deploy -run Golden -update rewrites them. The
// ConfigMap is left out: it is shoal.yaml, checked above.
func TestExportGolden(t *testing.T) {
	files, _ := exportFlix(t, KubeOptions{Namespace: "flix", Registry: "registry.example/acme",
		Release: Release{Version: "v1.0.0"}, DevPostgres: true})
	delete(files, configFile)
	dir := filepath.Join("testdata", "kubernetes", "flix")
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := WriteFiles(dir, files); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, e := range entries {
		have = append(have, e.Name())
	}
	if want := slices.Sorted(maps.Keys(files)); !slices.Equal(have, want) {
		t.Errorf("golden files %v, export writes %v (go test ./deploy -run Golden -update)", have, want)
	}
	for name, got := range files {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue // reported above
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from its golden file (go test ./deploy -run Golden -update, then review the diff)", name)
		}
	}
}

// Names that Kubernetes cannot take are refused up front, all at once.
func TestExportRefusesBadNames(t *testing.T) {
	long := strings.Repeat("x", 60)
	m := &manifest.Manifest{Name: "flix", Path: "/tmp/shoal.yaml", Dir: "/tmp", DrainTimeout: time.Second,
		Services: manifest.Services{{Name: long, Build: "./x", Instances: 1, Register: manifest.RegisterSDK, Health: "/readyz"}}}
	_, err := Export(m, KubeOptions{Namespace: "Bad_NS", Release: testRelease})
	if err == nil || !strings.Contains(err.Error(), `namespace "Bad_NS"`) || !strings.Contains(err.Error(), "flix-"+long) {
		t.Fatalf("error %v, want the namespace and the long name", err)
	}
}

// TestExportOperatorKey: with --operator-key every pod gets the operator's
// public key, so that its tokens are honoured; without it none does; a key
// that is not one is refused.
func TestExportOperatorKey(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := chaos.PublicKey(priv)
	_, with := exportFlix(t, KubeOptions{Release: testRelease, OperatorKey: pub})
	_, without := exportFlix(t, KubeOptions{Release: testRelease})
	for name, d := range with.deployments {
		if got := envOf(d.Spec.Template.Spec.Containers[0])[envFaultKey]; got.Value != pub {
			t.Errorf("%s: %s = %+v, want the operator's public key", name, envFaultKey, got)
		}
		if got, ok := envOf(without.deployments[name].Spec.Template.Spec.Containers[0])[envFaultKey]; ok {
			t.Errorf("%s without --operator-key: %s = %+v", name, envFaultKey, got)
		}
	}
	if len(with.deployments) == 0 {
		t.Fatal("no deployments")
	}
	if _, err := Export(flix(t), KubeOptions{Release: testRelease, OperatorKey: "not-a-key"}); err == nil || !strings.Contains(err.Error(), "--operator-key") {
		t.Errorf("a bad key: %v", err)
	}
}
