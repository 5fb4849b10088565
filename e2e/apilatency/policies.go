package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

//go:embed policies.yaml
var policiesYAML []byte

// fieldManager owns the policies the run applies.
const fieldManager = "apilatency"

// policySet is the CEL set-up's admission policies and their bindings.
type policySet struct {
	objects []*unstructured.Unstructured
	// resources holds each object's resource once apply has mapped it.
	resources []*meta.RESTMapping
}

func parsePolicies() (*policySet, error) {
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := yaml.Unmarshal(policiesYAML, &list); err != nil {
		return nil, fmt.Errorf("parsing policies.yaml: %w", err)
	}
	set := &policySet{}
	for _, item := range list.Items {
		set.objects = append(set.objects, &unstructured.Unstructured{Object: item})
	}
	return set, nil
}

// apply creates or updates every object by server-side apply, which also
// repairs what an interrupted earlier run left behind.
func (p *policySet) apply(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface) error {
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))
	for _, o := range p.objects {
		gvk := o.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			return fmt.Errorf("the API server does not serve %s: admission policies in admissionregistration.k8s.io/v1 need Kubernetes 1.36 or later "+
				"(MutatingAdmissionPolicy went GA, enabled by default, in 1.36): %w", gvk, err)
		}
		if err != nil {
			return fmt.Errorf("mapping %s: %w", gvk, err)
		}
		p.resources = append(p.resources, mapping)
		if _, err := dyn.Resource(mapping.Resource).Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
			return fmt.Errorf("applying %s %s: %w", gvk.Kind, o.GetName(), err)
		}
	}
	return nil
}

// remove deletes what apply created, in reverse, so that each binding goes
// before the policy it refers to.
func (p *policySet) remove(ctx context.Context, dyn dynamic.Interface) error {
	var errs []error
	for i, mapping := range slices.Backward(p.resources) {
		name := p.objects[i].GetName()
		if err := dyn.Resource(mapping.Resource).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting %s %s: %w", p.objects[i].GetKind(), name, err))
		}
	}
	return errors.Join(errs...)
}
