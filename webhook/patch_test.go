package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	jsonpatchv2 "gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/daemonset-guard/daemonset-guard/internal/generate"
	"github.com/daemonset-guard/daemonset-guard/internal/seed"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// TestMutableFieldsPatchEqualsTheWholeObjectPatch holds the mutator's patch,
// a diff of rules.MutableFields only, to the patch a plain webhook computes:
// PatchResponseFromRaw from the request's object to the whole mutated object.
// Over the real-world corpus and generated DaemonSets, CREATE and UPDATE,
// with generated policies, both patches applied to the request's object must
// give the same object, byte for byte once re-encoded. A mutation rule that
// changes a field its fields function does not copy fails here.
func TestMutableFieldsPatchEqualsTheWholeObjectPatch(t *testing.T) {
	rng := seed.Rand(t)
	store := policy.NewStore(policy.Default(rules.Builtin()))
	metrics, err := NewMetrics(prometheus.NewRegistry(), inventory.New(), rules.Builtin().Names())
	if err != nil {
		t.Fatal(err)
	}
	mutator, _ := newHandlers(handler{rules: rules.Builtin(), policy: store, nodes: inventory.New(), metrics: metrics}, logr.Discard())

	var written []*appsv1.DaemonSet
	for range 20 {
		written = append(written, corpus(t)...)
	}
	for i := range 2000 {
		written = append(written, generate.DaemonSet(rng, i))
	}
	patched := 0
	for i, ds := range written {
		offline.Default(ds)
		store.Set(generate.Policy(rng))
		req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: types.UID(fmt.Sprint(i)), Kind: daemonSetKind, Resource: daemonSetResource,
			Operation: admissionv1.Create, Object: raw(t, ds),
		}}
		if i%2 == 1 {
			// An update that changes the template, so that every rule may act.
			old := ds.DeepCopy()
			old.Spec.Template.Spec.Containers[0].Image += "-previous"
			req.Operation, req.OldObject = admissionv1.Update, raw(t, old)
		}

		got := mutator.Handle(context.Background(), req)
		if !got.Allowed {
			t.Fatalf("case %d: refused: %v", i, got.Result)
		}
		in, err := mutator.input(req)
		if err != nil {
			t.Fatal(err)
		}
		rules.Builtin().Mutate(in)
		want := admission.PatchResponseFromRaw(req.Object.Raw, raw(t, in.Object).Raw)

		gotObject, wantObject := apply(t, req.Object.Raw, got.Patches), apply(t, req.Object.Raw, want.Patches)
		if string(gotObject) != string(wantObject) {
			t.Fatalf("case %d (%s): the patches differ\nmutable fields: %v\nwhole object:   %v", i, req.Operation, got.Patches, want.Patches)
		}
		if len(got.Patches) > 0 {
			patched++
		}
	}
	// The comparison means something only if most cases were mutated.
	if patched < len(written)/2 {
		t.Fatalf("only %d of %d cases were mutated", patched, len(written))
	}
	t.Logf("%d cases, %d mutated, identical objects", len(written), patched)
}

// corpus returns the real-world DaemonSets of the offline parity test.
func corpus(t *testing.T) []*appsv1.DaemonSet {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("offline", "testdata", "corpus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*appsv1.DaemonSet
	for {
		ds := &appsv1.DaemonSet{}
		if err := dec.Decode(ds); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		out = append(out, ds)
	}
}

func raw(t *testing.T, ds *appsv1.DaemonSet) runtime.RawExtension {
	t.Helper()
	ds.APIVersion, ds.Kind = "apps/v1", "DaemonSet"
	b, err := json.Marshal(ds)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.RawExtension{Raw: b}
}

// apply applies a JSON patch and re-encodes the result with sorted keys, so
// that key order does not count.
func apply(t *testing.T, doc []byte, ops []jsonpatchv2.Operation) []byte {
	t.Helper()
	if ops == nil {
		ops = []jsonpatchv2.Operation{}
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decoded.Apply(doc)
	if err != nil {
		t.Fatalf("applying %s: %v", patch, err)
	}
	var asMap map[string]any
	if err := json.Unmarshal(out, &asMap); err != nil {
		t.Fatal(err)
	}
	canonical, err := json.Marshal(asMap)
	if err != nil {
		t.Fatal(err)
	}
	return canonical
}
