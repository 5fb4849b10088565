package priorityclass

import (
	"testing"

	schedulingv1helpers "k8s.io/kubernetes/pkg/apis/scheduling/v1"
)

func TestSystemIsTheAPIServersSystemClasses(t *testing.T) {
	for _, pc := range schedulingv1helpers.SystemPriorityClasses() {
		if got, ok := System(pc.Name); !ok || got != Of(pc) {
			t.Errorf("System(%q) = %+v, %v; want %+v", pc.Name, got, ok, Of(pc))
		}
	}
	if _, ok := System("node-critical"); ok {
		t.Error("System knows a class that is no system class")
	}
}
