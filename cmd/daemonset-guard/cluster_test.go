package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
)

// startCluster starts a real API server with the namespace logging, and
// returns a client and the path of a kubeconfig for the subcommands.
func startCluster(t *testing.T) (kubernetes.Interface, string) {
	t.Helper()
	client, kubeconfig, _ := startEnvironment(t, &envtest.Environment{})
	return client, kubeconfig
}

// startEnvironment is startCluster for an environment of the test's own,
// whose rest config it also returns.
func startEnvironment(t *testing.T, env *envtest.Environment) (kubernetes.Interface, string, *rest.Config) {
	t.Helper()
	env = testenv.StartEnvironment(t, env)
	user, err := env.AddUser(envtest.User{Name: "cli", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "logging"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return client, kubeconfig, env.Config
}
