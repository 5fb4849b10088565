package metricsauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
)

// reviews counts the TokenReviews and SubjectAccessReviews a client posts.
type reviews struct {
	next           http.RoundTripper
	tokens, access atomic.Int32
}

func (r *reviews) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case strings.HasSuffix(req.URL.Path, "/tokenreviews"):
		r.tokens.Add(1)
	case strings.HasSuffix(req.URL.Path, "/subjectaccessreviews"):
		r.access.Add(1)
	}
	return r.next.RoundTrip(req)
}

func TestTheGuardDecidesAsControllerRuntimesFilter(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cfg := testenv.StartEnvironment(t, &envtest.Environment{}).Config
	client := kubernetes.NewForConfigOrDie(cfg)

	// A reader may get /metrics, a poster may post to it, a stranger
	// neither.
	for verb, account := range map[string]string{"get": "reader", "post": "poster"} {
		_, err := client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "metrics-" + account},
			Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{verb}}},
		}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		_, err = client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "metrics-" + account},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "metrics-" + account},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: account, Namespace: "default"}},
		}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	token := map[string]string{}
	for _, account := range []string{"reader", "poster", "stranger"} {
		_, err := client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: account}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		tr, err := client.CoreV1().ServiceAccounts("default").CreateToken(ctx, account,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		token[account] = tr.Status.Token
	}
	// RBAC reads its bindings from an informer: wait until they are in
	// effect, so that neither filter caches a denial from before.
	g.Eventually(func() bool {
		sar, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: "system:serviceaccount:default:poster", NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "post"},
		}}, metav1.CreateOptions{})
		return err == nil && sar.Status.Allowed
	}, 10*time.Second, 100*time.Millisecond).Should(BeTrue(), "the bindings take effect")

	filter := func(provider func(*rest.Config, *http.Client) (metricsserver.Filter, error), counted *reviews) http.Handler {
		httpClient, err := rest.HTTPClientFor(cfg)
		g.Expect(err).NotTo(HaveOccurred())
		counted.next = httpClient.Transport
		httpClient.Transport = counted
		f, err := provider(cfg, httpClient)
		g.Expect(err).NotTo(HaveOccurred())
		h, err := f(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
		g.Expect(err).NotTo(HaveOccurred())
		return h
	}
	var ourReviews, theirReviews reviews
	ours := filter(WithAuthenticationAndAuthorization, &ourReviews)
	theirs := filter(filters.WithAuthenticationAndAuthorization, &theirReviews)

	tests := []struct {
		name                 string
		method, path, header string
		want                 int
		// theirs is what controller-runtime's filter answers when it is
		// not want.
		theirs int
	}{
		{name: "refuses a request without credentials", method: "GET", path: "/metrics", want: http.StatusUnauthorized},
		{name: "refuses basic credentials", method: "GET", path: "/metrics", header: "Basic cmVhZGVyOnNlY3JldA==", want: http.StatusUnauthorized},
		{name: "refuses an empty bearer token", method: "GET", path: "/metrics", header: "Bearer ", want: http.StatusUnauthorized},
		{name: "answers 401, not 500, to a token the API server does not authenticate", method: "GET", path: "/metrics", header: "Bearer not-a-token", want: http.StatusUnauthorized, theirs: http.StatusInternalServerError},
		{name: "forbids a ServiceAccount without the role", method: "GET", path: "/metrics", header: "Bearer " + token["stranger"], want: http.StatusForbidden},
		{name: "admits the reader to get /metrics", method: "GET", path: "/metrics", header: "Bearer " + token["reader"], want: http.StatusOK},
		{name: "reads the scheme case-insensitively, as the API server does", method: "GET", path: "/metrics", header: "bearer " + token["reader"], want: http.StatusOK},
		{name: "forbids the reader another path", method: "GET", path: "/debug/pprof", header: "Bearer " + token["reader"], want: http.StatusForbidden},
		{name: "forbids the reader another verb", method: "POST", path: "/metrics", header: "Bearer " + token["reader"], want: http.StatusForbidden},
		{name: "admits the verb the role names", method: "POST", path: "/metrics", header: "Bearer " + token["poster"], want: http.StatusOK},
		{name: "forbids the poster to get", method: "GET", path: "/metrics", header: "Bearer " + token["poster"], want: http.StatusForbidden},
	}
	answer := func(h http.Handler, method, path, header string) int {
		req := httptest.NewRequest(method, path, nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := answer(ours, tt.method, tt.path, tt.header); got != tt.want {
				t.Errorf("the guard answered %d, want %d", got, tt.want)
			}
			want := tt.want
			if tt.theirs != 0 {
				want = tt.theirs
			}
			if got := answer(theirs, tt.method, tt.path, tt.header); got != want {
				t.Errorf("controller-runtime's filter answered %d, want %d: the two no longer decide alike", got, want)
			}
		})
	}

	t.Run("asks the API server once per token and per access within the caches' lifetimes", func(t *testing.T) {
		tokens, access := ourReviews.tokens.Load(), ourReviews.access.Load()
		if tokens != theirReviews.tokens.Load() || access != theirReviews.access.Load() {
			t.Errorf("the guard made %d token and %d access reviews, controller-runtime's filter %d and %d",
				tokens, access, theirReviews.tokens.Load(), theirReviews.access.Load())
		}
		for _, tt := range tests {
			answer(ours, tt.method, tt.path, tt.header)
		}
		if ourReviews.tokens.Load() != tokens || ourReviews.access.Load() != access {
			t.Errorf("the same requests again made %d more token and %d more access reviews, want none",
				ourReviews.tokens.Load()-tokens, ourReviews.access.Load()-access)
		}
	})
}
