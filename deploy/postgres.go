package deploy

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The development database (KubeOptions.DevPostgres): the official
// image's Alpine variant, whose postgres user is 70.
const (
	postgresImage = "postgres:17-alpine"
	postgresUID   = 70
	postgresPort  = 5432
	postgresUser  = "shoal"
	postgresData  = "/var/lib/postgresql/data"
)

// postgres is one PostgreSQL pod with a volume, behind a headless Service
// of the same name: enough for a trial, not for data that matters (one
// instance, no backups; use a managed database and put its URL in the
// database Secret instead).
func (k *kube) postgres() []runtime.Object {
	name := k.name(secretPostgres)
	labels := k.labels(secretPostgres)
	uid := int64(postgresUID)
	probe := &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"pg_isready", "-h", "127.0.0.1", "-U", postgresUser, "-d", k.system}}},
		PeriodSeconds: 5, TimeoutSeconds: 3, FailureThreshold: 3, SuccessThreshold: 1,
	}
	svc := &corev1.Service{TypeMeta: typeMeta("v1", "Service"), ObjectMeta: k.meta(name, secretPostgres),
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  labels,
			Ports:     []corev1.ServicePort{{Name: "postgres", Protocol: corev1.ProtocolTCP, Port: postgresPort, TargetPort: intstr.FromString("postgres")}},
		}}
	podLabels := k.labels(secretPostgres)
	podLabels["app.kubernetes.io/managed-by"] = "shoal"
	sts := &appsv1.StatefulSet{TypeMeta: typeMeta("apps/v1", "StatefulSet"), ObjectMeta: k.meta(name, secretPostgres),
		Spec: appsv1.StatefulSetSpec{
			ServiceName: name,
			Replicas:    new(int32(1)),
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: new(false),
					EnableServiceLinks:           new(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: new(true), RunAsUser: &uid, RunAsGroup: &uid, FSGroup: &uid,
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            "postgres",
						Image:           postgresImage,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Ports:           []corev1.ContainerPort{{Name: "postgres", ContainerPort: postgresPort, Protocol: corev1.ProtocolTCP}},
						Env: []corev1.EnvVar{
							{Name: "POSTGRES_USER", Value: postgresUser},
							{Name: "POSTGRES_DB", Value: k.system},
							{Name: "POSTGRES_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: keyPassword}}},
							// A folder below the volume's root, which may hold lost+found.
							{Name: "PGDATA", Value: postgresData + "/pgdata"},
						},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
						},
						ReadinessProbe:  probe,
						SecurityContext: restricted(),
						VolumeMounts: []corev1.VolumeMount{
							{Name: "data", MountPath: postgresData},
							{Name: "run", MountPath: "/var/run/postgresql"},
							{Name: "tmp", MountPath: tmpDir},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "run", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				TypeMeta:   typeMeta("v1", "PersistentVolumeClaim"),
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		}}
	return []runtime.Object{svc, sts}
}

// devDatabaseURL is the database Secret's URL for the development
// database, with the password as a shell variable of secrets.sh.
func (k *kube) devDatabaseURL(passwordVar string) string {
	return "postgres://" + postgresUser + ":${" + passwordVar + "}@" + k.name(secretPostgres) + ":5432/" + k.system + "?sslmode=disable"
}
