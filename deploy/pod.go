package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/manifest"
)

// Resources of an instance, from the footprint of flix measured in
// docs/BENCHMARKS.md ("Footprint, startup and journeys of flix"): the
// largest instance used 39.2 MB under load (the gateway at 64 concurrent
// clients; the others 21-32 MB, trailers 22 MB) and 0.01-0.03 cores idle,
// up to 0.33 cores with the whole system saturating 2 cores. The memory
// request covers the loaded figure with a fifth to spare; the limit, 4x
// the request, stops a leak without cutting into a burst or the gateway's
// GOGC=400 heap. No CPU limit: throttling would add latency to every
// request, and admission control sheds load before a pod starves.
var (
	memoryRequest = resource.MustParse("48Mi")
	memoryLimit   = resource.MustParse("192Mi")
	cpuRequest    = resource.MustParse("100m")
)

// Probes. A service is ready in tens of milliseconds, but its first start
// may write a dataset, and the agent waits up to a minute for its
// program, so the startup probe allows a minute. Readiness is the SDK's
// (false while draining); liveness only catches a hung process.
var (
	startupProbe   = probe(shoal.PathHealth, 1, 60)
	readinessProbe = probe(shoal.PathReady, 2, 2)
	livenessProbe  = probe(shoal.PathHealth, 10, 3)
)

func probe(p string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: p, Port: intstr.FromString("admin")}},
		PeriodSeconds:    period,
		TimeoutSeconds:   1,
		FailureThreshold: failures,
		SuccessThreshold: 1,
	}
}

// deployment runs the instances of s, replaced one at a time: a new pod
// must be ready before an old one goes (maxUnavailable 0).
func (k *kube) deployment(s *manifest.Service) *appsv1.Deployment {
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	meta := k.meta(k.name(s.Name), s.Name)
	meta.Labels["app.kubernetes.io/version"] = k.opts.Release.Version
	return &appsv1.Deployment{TypeMeta: typeMeta("apps/v1", "Deployment"), ObjectMeta: meta,
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(s.Instances)),
			Selector: &metav1.LabelSelector{MatchLabels: k.labels(s.Name)},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &zero, MaxSurge: &one}},
			Template: k.podTemplate(s),
		}}
}

// disruptionBudget lets voluntary disruptions (node drains, upgrades)
// evict one instance at a time, each draining as in a rolling update.
// Pods that are not running well may always be evicted, so that a broken
// pod cannot block a node's drain.
func (k *kube) disruptionBudget(s *manifest.Service) *policyv1.PodDisruptionBudget {
	one := intstr.FromInt32(1)
	always := policyv1.AlwaysAllow
	return &policyv1.PodDisruptionBudget{TypeMeta: typeMeta("policy/v1", "PodDisruptionBudget"), ObjectMeta: k.meta(k.name(s.Name), s.Name),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable:             &one,
			Selector:                   &metav1.LabelSelector{MatchLabels: k.labels(s.Name)},
			UnhealthyPodEvictionPolicy: &always,
		}}
}

func (k *kube) podTemplate(s *manifest.Service) corev1.PodTemplateSpec {
	labels := k.labels(s.Name)
	labels["app.kubernetes.io/managed-by"] = "shoal"
	labels["app.kubernetes.io/version"] = k.opts.Release.Version
	uid := int64(UID)
	grace := int64((preStopDelay + k.m.DrainTimeout + stopMargin).Seconds() + 0.999)
	spec := corev1.PodSpec{
		TerminationGracePeriodSeconds: &grace,
		// Services call each other through gossip, not the Kubernetes
		// API: no token to steal, and no service links in the env.
		AutomountServiceAccountToken: new(false),
		EnableServiceLinks:           new(false),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   new(true),
			RunAsUser:      &uid,
			RunAsGroup:     &uid,
			FSGroup:        &uid, // the Secret files are 0440, readable by the group
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			// Instances on different nodes where possible: a node that
			// fails takes one instance, not the service.
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 100,
				PodAffinityTerm: corev1.PodAffinityTerm{
					LabelSelector: &metav1.LabelSelector{MatchLabels: k.labels(s.Name)},
					TopologyKey:   corev1.LabelHostname,
				},
			}},
		}},
		Containers: []corev1.Container{k.container(s)},
		Volumes:    k.volumes(s),
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
			"prometheus.io/scrape": "true",
			"prometheus.io/port":   strconv.Itoa(AdminPort),
			"prometheus.io/path":   shoal.PathMetrics,
		}},
		Spec: spec,
	}
}

func (k *kube) container(s *manifest.Service) corev1.Container {
	_, args, _ := containerCommand(k.m, s) // checked by newKube
	return corev1.Container{
		Name:            s.Name,
		Image:           ImageRef(k.opts.Registry, k.m.Name, s.Name, k.opts.Release.Version),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args:            args,
		WorkingDir:      WorkDir,
		Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: HTTPPort, Protocol: corev1.ProtocolTCP},
			{Name: "admin", ContainerPort: AdminPort, Protocol: corev1.ProtocolTCP},
			{Name: "gossip", ContainerPort: GossipPort, Protocol: corev1.ProtocolTCP},
			{Name: "gossip-udp", ContainerPort: GossipPort, Protocol: corev1.ProtocolUDP},
		},
		Env: k.env(s),
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: cpuRequest, corev1.ResourceMemory: memoryRequest},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: memoryLimit},
		},
		StartupProbe:   startupProbe,
		ReadinessProbe: readinessProbe,
		LivenessProbe:  livenessProbe,
		Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
			Sleep: &corev1.SleepAction{Seconds: int64(preStopDelay.Seconds())},
		}},
		SecurityContext: restricted(),
		VolumeMounts:    k.mounts(s),
	}
}

// restricted is the security context of every container: the restricted
// Pod Security Standard, with a read-only root file system.
func restricted() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: new(false),
		Privileged:               new(false),
		ReadOnlyRootFilesystem:   new(true),
		RunAsNonRoot:             new(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// env is the instance's environment: the pod's address through the
// downward API, the SHOAL_* settings shoal up would give it (with pod
// addresses instead of loopback), the manifest's env:, and the Secrets'
// values by reference.
func (k *kube) env(s *manifest.Service) []corev1.EnvVar {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	secret := func(name, secret, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}}
	}
	val := func(name, v string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: v} }
	// The manifest's env: first, as under shoal up, where the SHOAL_*
	// variables come last and win.
	env := []corev1.EnvVar{field(envPodIP, "status.podIP"), field(envPodName, "metadata.name")}
	for _, name := range slices.Sorted(maps.Keys(s.Env)) {
		env = append(env, val(name, s.Env[name]))
	}
	if len(s.Dependencies) > 0 {
		env = append(env, val(envDependencies, manifest.DependenciesJSON(s.Dependencies)))
	}
	env = append(env,
		val(envName, s.Name),
		val(envInstance, "$("+envPodName+")"),
		val(envVersion, k.opts.Release.Version),
		val(envAddr, fmt.Sprintf(":%d", HTTPPort)),
		val(envAdvertiseAddr, fmt.Sprintf("$(%s):%d", envPodIP, HTTPPort)),
		val(envAdminAddr, fmt.Sprintf(":%d", AdminPort)),
		// Bound to the pod's address, gossip also advertises it.
		val(envGossipAddr, fmt.Sprintf("$(%s):%d", envPodIP, GossipPort)),
		val(envSeeds, k.seeds()),
		val(envDrainTimeout, k.m.DrainTimeout.String()),
		secret(envGossipKey, k.name(secretGossip), keyGossip),
		val(envIdentityCert, path.Join(IdentityDir, corev1.TLSCertKey)),
		val(envIdentityKey, path.Join(IdentityDir, corev1.TLSPrivateKeyKey)),
		val(envIdentityBundle, path.Join(IdentityDir, keyCA)),
	)
	if p := k.m.Authorization.Policy(); p != nil {
		b, _ := json.Marshal(p) // a map of string lists
		env = append(env, val(envPolicy, string(b)))
	}
	if s.Store {
		env = append(env, secret(envDatabaseURL, k.name(secretDatabase), keyDatabaseURL))
	}
	if k.opts.OperatorKey != "" {
		env = append(env, val(envFaultKey, k.opts.OperatorKey))
	}
	return env
}

// volumes: the manifest and its files at their paths under WorkDir, the
// instance's identity, and a writable /tmp (the root file system is
// read-only).
func (k *kube) volumes(s *manifest.Service) []corev1.Volume {
	mode := int32(0o440)
	var vols []corev1.Volume
	if sources := k.fileSources(s); len(sources) > 0 {
		vols = append(vols, corev1.Volume{Name: "files", VolumeSource: corev1.VolumeSource{
			Projected: &corev1.ProjectedVolumeSource{DefaultMode: &mode, Sources: sources}}})
	}
	vols = append(vols,
		corev1.Volume{Name: "identity", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{DefaultMode: &mode,
			Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: k.name(secretIdentity + s.Name)}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: k.name(secretCA)},
					Items: []corev1.KeyToPath{{Key: keyCA, Path: keyCA}}}},
			}}}},
		corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: new(resource.MustParse("64Mi"))}}},
	)
	return vols
}

// fileSources put the manifest (from the ConfigMap) and the files s needs
// (from the files Secret) at their paths relative to the manifest. A
// projected volume is updated in place when its sources change, so the
// gateways see a new manifest without a restart.
func (k *kube) fileSources(s *manifest.Service) []corev1.VolumeProjection {
	var sources []corev1.VolumeProjection
	if k.config[s.Name] {
		sources = append(sources, corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: k.name("config")},
			Items:                []corev1.KeyToPath{{Key: k.manifest, Path: k.manifest}}}})
	}
	if files := k.files[s.Name]; len(files) > 0 {
		items := make([]corev1.KeyToPath, len(files))
		for i, f := range files {
			items[i] = corev1.KeyToPath{Key: k.fileKeys[f], Path: f}
		}
		sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: k.name(secretFiles)}, Items: items}})
	}
	return sources
}

func (k *kube) mounts(s *manifest.Service) []corev1.VolumeMount {
	var ms []corev1.VolumeMount
	if len(k.fileSources(s)) > 0 {
		ms = append(ms, corev1.VolumeMount{Name: "files", MountPath: WorkDir, ReadOnly: true})
	}
	return append(ms,
		corev1.VolumeMount{Name: "identity", MountPath: IdentityDir, ReadOnly: true},
		corev1.VolumeMount{Name: "tmp", MountPath: tmpDir},
	)
}
