package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
)

// realistic is a log collector of the size real ones have (about 4 KB of
// JSON): volumes, mounts, environment, resources and probes.
func realistic() *appsv1.DaemonSet {
	return fixture.DaemonSet("fluent-bit", func(ds *appsv1.DaemonSet) {
		ds.Labels = map[string]string{"app.kubernetes.io/name": "fluent-bit", "app.kubernetes.io/instance": "logging", "app.kubernetes.io/managed-by": "Helm"}
		ds.Annotations = map[string]string{"meta.helm.sh/release-name": "logging", "meta.helm.sh/release-namespace": "logging"}
		spec := &ds.Spec.Template.Spec
		spec.ServiceAccountName = "fluent-bit"
		spec.PriorityClassName = "system-node-critical"
		c := &spec.Containers[0]
		c.Args = []string{"--workdir=/fluent-bit/etc", "--config=/fluent-bit/etc/conf/fluent-bit.conf"}
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 2020, Protocol: corev1.ProtocolTCP}}
		c.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		}
		probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/api/v1/health", Port: intstr.FromString("http")}}, PeriodSeconds: 10}
		c.LivenessProbe, c.ReadinessProbe = probe, probe
		for _, name := range []string{"NODE_NAME", "POD_NAME", "POD_NAMESPACE", "HOST_IP"} {
			c.Env = append(c.Env, corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}})
		}
		for _, v := range []struct{ name, path string }{{"varlog", "/var/log"}, {"varlibdockercontainers", "/var/lib/docker/containers"}, {"etcmachineid", "/etc/machine-id"}, {"config", "/fluent-bit/etc/conf"}} {
			spec.Volumes = append(spec.Volumes, corev1.Volume{Name: v.name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: v.path}}})
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: v.name, MountPath: v.path, ReadOnly: true})
		}
		spec.Tolerations = []corev1.Toleration{{Key: "node-role.kubernetes.io/master", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	})
}

// allowAll is the decode-only baseline: controller-runtime's typed validator
// that decodes the object and allows it.
type allowAll struct{}

func (allowAll) ValidateCreate(context.Context, *appsv1.DaemonSet) (admission.Warnings, error) {
	return nil, nil
}
func (allowAll) ValidateUpdate(context.Context, *appsv1.DaemonSet, *appsv1.DaemonSet) (admission.Warnings, error) {
	return nil, nil
}
func (allowAll) ValidateDelete(context.Context, *appsv1.DaemonSet) (admission.Warnings, error) {
	return nil, nil
}

// naiveMutator is the mutation baseline: decode, add one toleration,
// marshal, PatchResponseFromRaw against the raw request.
func naiveMutator(scheme *runtime.Scheme) admission.HandlerFunc {
	decoder := admission.NewDecoder(scheme)
	return func(_ context.Context, req admission.Request) admission.Response {
		ds := &appsv1.DaemonSet{}
		if err := decoder.Decode(req, ds); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		ds.Spec.Template.Spec.Tolerations = append(ds.Spec.Template.Spec.Tolerations, corev1.Toleration{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
		out, err := json.Marshal(ds)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		return admission.PatchResponseFromRaw(req.Object.Raw, out)
	}
}

// BenchmarkHandlers measures a whole admission request (HTTP body to
// AdmissionReview answer, without TLS) for both webhooks on a realistic
// DaemonSet, with node inventories of growing size in 20 classes, beside two
// baselines measured in the same run: a validator that only decodes and
// allows, and a naive mutator. `make bench` prints the ratios.
func BenchmarkHandlers(b *testing.B) {
	create := reviewBody("CREATE", realistic(), nil, "")
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	serve := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		b.SetBytes(int64(len(create)))
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(create))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"uid":"705ab4f5-6393-11e8-b7cc-42010a800002"`) {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	}
	b.Run("baseline=decode-only-validator", func(b *testing.B) {
		serve(b, admission.WithValidator[*appsv1.DaemonSet](scheme, allowAll{}))
	})
	b.Run("baseline=naive-mutator", func(b *testing.B) {
		serve(b, &admission.Webhook{Handler: naiveMutator(scheme)})
	})
	for _, n := range []int{0, 100, 1000, 5000, 10000} {
		srv := newTestServer(b, fixture.Cluster(n, 20)...)
		b.Run(fmt.Sprintf("validate/nodes=%d", n), func(b *testing.B) { serve(b, srv.validate) })
		b.Run(fmt.Sprintf("mutate/nodes=%d", n), func(b *testing.B) { serve(b, srv.mutate) })
	}
}
