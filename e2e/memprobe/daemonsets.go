package main

import (
	"context"
	"fmt"
	"io"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/daemonset-guard/daemonset-guard/e2e/internal/bench"
	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
)

// daemonSetNamespace holds memprobe's DaemonSets, with a quota of no pods:
// the DaemonSets are what is measured, and thousands of daemon pods would
// take the local cluster minutes.
const daemonSetNamespace = "memprobe"

// createDaemonSets creates count realistic DaemonSets (fluent-bit as its
// chart installs it, 2.5 KB, plus what the API server adds: managedFields,
// status) through both webhooks.
func createDaemonSets(ctx context.Context, cfg *rest.Config, count, workers int, out io.Writer) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 1000, 1000
	cfg.ContentType = runtime.ContentTypeProtobuf
	// Each create gets the webhook's coverage warning: a thousand lines of
	// noise here.
	cfg.WarningHandler = rest.NoWarnings{}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: daemonSetNamespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", daemonSetNamespace, err)
	}
	_, err = client.CoreV1().ResourceQuotas(daemonSetNamespace).Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "no-pods"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the quota of no pods: %w", err)
	}
	start := time.Now()
	err = bench.ForEach(ctx, count, workers, func(ctx context.Context, i int) error {
		ds := fixture.Realistic(func(ds *appsv1.DaemonSet) {
			ds.Name, ds.Namespace = fmt.Sprintf("fluent-bit-%04d", i), daemonSetNamespace
			ds.Spec.Selector.MatchLabels["app.kubernetes.io/name"] = ds.Name
			ds.Spec.Template.Labels["app.kubernetes.io/name"] = ds.Name
		})
		if _, err := client.AppsV1().DaemonSets(daemonSetNamespace).Create(ctx, ds, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating DaemonSet %s: %w", ds.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "created %d DaemonSets in namespace %s in %v\n", count, daemonSetNamespace, time.Since(start).Round(time.Second))
	return nil
}
