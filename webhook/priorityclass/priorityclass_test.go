package priorityclass

import (
	"testing"

	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
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

func TestGlobalDefaultIsTheLowestOfSeveralAndFollowsDeletes(t *testing.T) {
	class := func(name string, value int32) schedulingv1.PriorityClass {
		return schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value, GlobalDefault: true}
	}
	high, low := class("high-default", 1000), class("low-default", 10)
	c := New(high, low)
	if def, ok := c.GlobalDefault(); !ok || def.Name != "low-default" {
		t.Errorf("GlobalDefault = %+v, %v; want low-default, as the Priority plugin picks the lowest", def, ok)
	}
	c.OnDelete(cache.DeletedFinalStateUnknown{Obj: &low})
	if def, ok := c.GlobalDefault(); !ok || def.Name != "high-default" {
		t.Errorf("after deleting low-default, GlobalDefault = %+v, %v; want high-default", def, ok)
	}
	if _, ok := c.Get("low-default"); ok {
		t.Error("a deleted class is still known")
	}
}
