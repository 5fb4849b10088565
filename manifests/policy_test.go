package manifests_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	admissionregistrationv1client "k8s.io/client-go/kubernetes/typed/admissionregistration/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
	"github.com/daemonset-guard/daemonset-guard/webhook/registration"
)

// webhookServiceAccount is the user the webhook's Deployment runs as.
const webhookServiceAccount = "system:serviceaccount:" + systemNamespace + ":daemonset-guard"

// TestTheWebhooksServiceAccountCanChangeNothingButTheCA impersonates the
// webhook's ServiceAccount on the real API server, with the overlay's RBAC
// and ValidatingAdmissionPolicy: it may fill in the shipped webhooks and
// change their caBundle, and every other change to its configurations is
// refused. Each case changes one field of manifests/webhooks.yaml, so a
// field the policy forgets fails here.
func TestTheWebhooksServiceAccountCanChangeNothingButTheCA(t *testing.T) {
	c := newInstallCluster(t)
	out, err := c.kubectl("", "apply", "-k", filepath.Join(testenv.RepoRoot(), "manifests", "overlays", "self-managed"))
	NewWithT(t).Expect(err).NotTo(HaveOccurred(), "kubectl apply -k:\n%s", out)
	cfg := rest.CopyConfig(c.env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: webhookServiceAccount,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + systemNamespace, "system:authenticated"}}
	asWebhook := kubernetes.NewForConfigOrDie(cfg).AdmissionregistrationV1()
	asAdmin := c.client.AdmissionregistrationV1()
	ctx := context.Background()

	mutating, validating, err := registration.Definition()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	// write sets both configurations to the shipped webhooks with the CA
	// bundle, changed by change, as the given client.
	write := func(api admissionregistrationv1client.AdmissionregistrationV1Interface, ca string, change func(*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration)) error {
		m, err := asAdmin.MutatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
		if err != nil {
			return err
		}
		v, err := asAdmin.ValidatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
		if err != nil {
			return err
		}
		m.Webhooks, v.Webhooks = mutating.DeepCopy().Webhooks, validating.DeepCopy().Webhooks
		m.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].ClientConfig.CABundle = []byte(ca), []byte(ca)
		change(m, v)
		if _, err := api.MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{}); err != nil {
			return err
		}
		_, err = api.ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{})
		return err
	}
	unchanged := func(*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	}

	// The API server compiles a new policy and its binding in the
	// background; until then nothing is enforced.
	NewWithT(t).Eventually(func() error {
		return write(asWebhook, "first CA", func(_ *admissionregistrationv1.MutatingWebhookConfiguration, v *admissionregistrationv1.ValidatingWebhookConfiguration) {
			v.Webhooks[0].FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
		})
	}, 30*time.Second, 250*time.Millisecond).Should(HaveOccurred(), "the policy takes effect")

	t.Run("fills in the shipped webhooks, and changes their CA bundle", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(write(asWebhook, "first CA", unchanged)).To(Succeed())
		g.Expect(write(asWebhook, "rotated CA", unchanged)).To(Succeed())
	})

	type (
		mwc = admissionregistrationv1.MutatingWebhookConfiguration
		vwc = admissionregistrationv1.ValidatingWebhookConfiguration
	)
	for _, tt := range []struct {
		name   string
		change func(*mwc, *vwc)
	}{
		{"widens the rules to every resource", func(_ *mwc, v *vwc) { v.Webhooks[0].Rules[0].Resources = []string{"*"} }},
		{"adds a rule for Secrets", func(m *mwc, _ *vwc) {
			m.Webhooks[0].Rules = append(m.Webhooks[0].Rules, admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}}})
		}},
		{"adds DELETE to the operations", func(_ *mwc, v *vwc) {
			v.Webhooks[0].Rules[0].Operations = append(v.Webhooks[0].Rules[0].Operations, admissionregistrationv1.Delete)
		}},
		{"widens the scope to cluster objects", func(_ *mwc, v *vwc) { v.Webhooks[0].Rules[0].Scope = ptr.To(admissionregistrationv1.AllScopes) }},
		{"makes the validating webhook fail open", func(_ *mwc, v *vwc) { v.Webhooks[0].FailurePolicy = ptr.To(admissionregistrationv1.Ignore) }},
		{"makes the mutating webhook fail closed", func(m *mwc, _ *vwc) { m.Webhooks[0].FailurePolicy = ptr.To(admissionregistrationv1.Fail) }},
		{"points a webhook at a URL", func(_ *mwc, v *vwc) {
			v.Webhooks[0].ClientConfig.Service = nil
			v.Webhooks[0].ClientConfig.URL = ptr.To("https://attacker.example.com/validate")
		}},
		{"points a webhook at another Service", func(m *mwc, _ *vwc) { m.Webhooks[0].ClientConfig.Service.Name = "other" }},
		{"points a webhook at another namespace", func(_ *mwc, v *vwc) { v.Webhooks[0].ClientConfig.Service.Namespace = "default" }},
		{"points a webhook at another path", func(m *mwc, _ *vwc) { m.Webhooks[0].ClientConfig.Service.Path = ptr.To("/validate-apps-v1-daemonset") }},
		{"points a webhook at another port", func(_ *mwc, v *vwc) { v.Webhooks[0].ClientConfig.Service.Port = ptr.To[int32](8443) }},
		{"lengthens the timeout", func(_ *mwc, v *vwc) { v.Webhooks[0].TimeoutSeconds = ptr.To[int32](30) }},
		{"changes the side effects", func(_ *mwc, v *vwc) {
			v.Webhooks[0].SideEffects = ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun)
		}},
		{"changes the match policy", func(_ *mwc, v *vwc) { v.Webhooks[0].MatchPolicy = ptr.To(admissionregistrationv1.Exact) }},
		{"changes the review versions", func(_ *mwc, v *vwc) { v.Webhooks[0].AdmissionReviewVersions = []string{"v1", "v1beta1"} }},
		{"changes the reinvocation policy", func(m *mwc, _ *vwc) {
			m.Webhooks[0].ReinvocationPolicy = ptr.To(admissionregistrationv1.NeverReinvocationPolicy)
		}},
		{"drops the namespace exclusions", func(_ *mwc, v *vwc) { v.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{} }},
		{"drops kube-system from the exclusions", func(_ *mwc, v *vwc) {
			v.Webhooks[0].NamespaceSelector.MatchExpressions[0].Values = []string{"daemonset-guard-system"}
		}},
		{"selects namespaces by label", func(m *mwc, _ *vwc) {
			m.Webhooks[0].NamespaceSelector.MatchLabels = map[string]string{"team": "platform"}
		}},
		{"selects objects", func(_ *mwc, v *vwc) {
			v.Webhooks[0].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"guarded": "yes"}}
		}},
		{"adds a match condition", func(_ *mwc, v *vwc) {
			v.Webhooks[0].MatchConditions = append(v.Webhooks[0].MatchConditions, admissionregistrationv1.MatchCondition{Name: "never", Expression: "false"})
		}},
		{"rewrites a match condition", func(m *mwc, _ *vwc) { m.Webhooks[0].MatchConditions[1].Expression = "false" }},
		{"drops the match conditions", func(_ *mwc, v *vwc) { v.Webhooks[0].MatchConditions = nil }},
		{"renames a webhook", func(_ *mwc, v *vwc) { v.Webhooks[0].Name = "validate.example.com" }},
		{"adds a second webhook", func(_ *mwc, v *vwc) {
			second := *v.Webhooks[0].DeepCopy()
			second.Name = "validate-too.daemonset-guard.io"
			v.Webhooks = append(v.Webhooks, second)
		}},
		{"empties a configuration", func(_ *mwc, v *vwc) { v.Webhooks = nil }},
		{"labels a configuration", func(m *mwc, _ *vwc) { m.Labels = map[string]string{"owner": "someone"} }},
		{"annotates a configuration", func(_ *mwc, v *vwc) {
			v.Annotations = map[string]string{"cert-manager.io/inject-ca-from": "default/attacker"}
		}},
	} {
		t.Run("refuses a change that "+tt.name, func(t *testing.T) {
			err := write(asWebhook, "rotated CA", tt.change)
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring("daemonset-guard's ServiceAccount may")))
		})
	}

	t.Run("leaves an administrator free to change them", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(write(asAdmin, "admin CA", func(_ *mwc, v *vwc) { v.Webhooks[0].TimeoutSeconds = ptr.To[int32](10) })).To(Succeed())
		live, err := asAdmin.ValidatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(*live.Webhooks[0].TimeoutSeconds).To(BeEquivalentTo(10))
		g.Expect(write(asWebhook, "rotated CA", unchanged)).To(Succeed(), "the webhook's ServiceAccount restores the shipped webhooks")
	})

	t.Run("refuses any other webhook configuration to the ServiceAccount", func(t *testing.T) {
		other := validating.DeepCopy()
		other.ObjectMeta = metav1.ObjectMeta{Name: "someone-else"}
		_, err := asAdmin.ValidatingWebhookConfigurations().Create(ctx, other, metav1.CreateOptions{})
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		other, err = asAdmin.ValidatingWebhookConfigurations().Get(ctx, "someone-else", metav1.GetOptions{})
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		other.Webhooks[0].TimeoutSeconds = ptr.To[int32](5)
		_, err = asWebhook.ValidatingWebhookConfigurations().Update(ctx, other, metav1.UpdateOptions{})
		NewWithT(t).Expect(err).To(HaveOccurred())
		NewWithT(t).Expect(strings.Contains(err.Error(), "forbidden")).To(BeTrue(), "RBAC names the two configurations: %v", err)
	})
}

// TestOnlyAdminsMayOptANamespaceOut impersonates users who may create and
// update namespaces: only members of system:masters or daemonset-guard-admins
// may set, change or remove the label that takes a namespace out of the
// webhooks; other labels stay free.
func TestOnlyAdminsMayOptANamespaceOut(t *testing.T) {
	c := newInstallCluster(t)
	g := NewWithT(t)
	out, err := c.kubectl("", "apply", "-k", filepath.Join(testenv.RepoRoot(), "manifests", "overlays", "self-managed"))
	g.Expect(err).NotTo(HaveOccurred(), "kubectl apply -k:\n%s", out)
	ctx := context.Background()
	_, err = c.client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "namespace-editor"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "create", "update"}}}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "namespace-editors"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "namespace-editor"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "dev"}, {Kind: rbacv1.UserKind, Name: "lead"}}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	as := func(user string, groups ...string) kubernetes.Interface {
		cfg := rest.CopyConfig(c.env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated")}
		return kubernetes.NewForConfigOrDie(cfg)
	}
	dev, lead := as("dev"), as("lead", "daemonset-guard-admins")
	const optOut = "daemonset-guard.io/ignore"
	namespace := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	relabel := func(client kubernetes.Interface, name string, change func(map[string]string)) error {
		ns, err := client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		change(ns.Labels)
		_, err = client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
		return err
	}
	refused := MatchError(ContainSubstring("only members of system:masters or daemonset-guard-admins may set, change or remove the label daemonset-guard.io/ignore"))

	// The API server compiles a new policy in the background.
	g.Eventually(func() error {
		// Admission comes before storage: once the policy is in force it
		// refuses this create, even of a name created before.
		_, err := dev.CoreV1().Namespaces().Create(ctx, namespace("probe", map[string]string{optOut: "true"}), metav1.CreateOptions{})
		return err
	}, 30*time.Second, 250*time.Millisecond).Should(refused, "the policy takes effect")

	_, err = dev.CoreV1().Namespaces().Create(ctx, namespace("team-a", map[string]string{optOut: "true"}), metav1.CreateOptions{})
	g.Expect(err).To(refused, "a namespace editor cannot create an opted-out namespace")
	_, err = dev.CoreV1().Namespaces().Create(ctx, namespace("team-a", map[string]string{"team": "a"}), metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "nor is anything else about namespaces restricted")
	g.Expect(relabel(dev, "team-a", func(l map[string]string) { l[optOut] = "true" })).To(refused, "a namespace editor cannot opt a namespace out")
	g.Expect(relabel(dev, "team-a", func(l map[string]string) { l["team"] = "b" })).To(Succeed(), "other labels stay free")
	g.Expect(relabel(lead, "team-a", func(l map[string]string) { l[optOut] = "true" })).To(Succeed(), "a member of daemonset-guard-admins may")
	g.Expect(relabel(dev, "team-a", func(l map[string]string) { l["team"] = "c" })).To(Succeed(), "an unchanged opt-out label is no change")
	g.Expect(relabel(dev, "team-a", func(l map[string]string) { l[optOut] = "false" })).To(refused, "nor change its value")
	g.Expect(relabel(dev, "team-a", func(l map[string]string) { delete(l, optOut) })).To(refused, "nor remove it")
	g.Expect(relabel(c.client, "team-a", func(l map[string]string) { delete(l, optOut) })).To(Succeed(), "system:masters may")
}
