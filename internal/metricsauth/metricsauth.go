// Package metricsauth guards the metrics endpoint as controller-runtime's
// filters.WithAuthenticationAndAuthorization does: a bearer token that the
// API server authenticates (TokenReview), authorized for the request's verb
// and path (SubjectAccessReview), both answers cached as that filter caches
// them. It asks through client-go's typed clients alone. The library's filter
// builds k8s.io/apiserver's whole delegating authentication and authorization
// stacks, which link CEL, gRPC and OpenTelemetry into the binary: 15 MB of
// binary and about 10 MB of resident memory in every replica, measured, for
// two API calls. TestTheGuardDecidesAsControllerRuntimesFilter holds the two
// to the same decisions on a real API server. Two differences, both on
// purpose: a token the API server does not authenticate is answered 401, where
// the library's filter answers 500 (its bearer authenticator reports every
// rejected token as an error); and a token in a WebSocket subprotocol header
// is not read, since no scraper sends one.
package metricsauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// The library filter's settings, kept so that a scraper meets the same
// caching and the API server the same load.
const (
	tokenTTL      = time.Minute
	allowTTL      = 5 * time.Minute
	denyTTL       = 30 * time.Second
	reviewTimeout = 10 * time.Second
	// cacheSize bounds each cache, as the API server's token cache is
	// bounded: random tokens cannot grow it.
	cacheSize = 4096
)

// WithAuthenticationAndAuthorization is a metricsserver.Options
// FilterProvider. The webhook's ServiceAccount needs create on
// authentication.k8s.io tokenreviews and authorization.k8s.io
// subjectaccessreviews; a scraper needs get on the non-resource URL /metrics.
func WithAuthenticationAndAuthorization(config *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	tokens, err := authenticationclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, fmt.Errorf("creating the TokenReview client: %w", err)
	}
	access, err := authorizationclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, fmt.Errorf("creating the SubjectAccessReview client: %w", err)
	}
	g := &guard{
		tokens:    tokens.TokenReviews(),
		access:    access.SubjectAccessReviews(),
		users:     cache.NewLRUExpireCache(cacheSize),
		decisions: cache.NewLRUExpireCache(cacheSize),
		// k8s.io/apiserver's DefaultAuthWebhookRetryBackoff, which the
		// library filter copies too.
		backoff: wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5},
	}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { g.serve(log, next, w, req) }), nil
	}, nil
}

type guard struct {
	tokens authenticationclient.TokenReviewInterface
	access authorizationclient.SubjectAccessReviewInterface
	// users maps a token's hash to its user, or to nil when the API server
	// did not authenticate it; decisions maps a review's spec to whether it
	// was allowed.
	users, decisions *cache.LRUExpireCache
	backoff          wait.Backoff
}

func (g *guard) serve(log logr.Logger, next http.Handler, w http.ResponseWriter, req *http.Request) {
	token, ok := bearerToken(req)
	if !ok {
		log.V(4).Info("Authentication failed: no bearer token")
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	user, err := g.authenticate(req.Context(), token)
	if err != nil {
		log.Error(err, "Authentication failed")
		http.Error(w, "Authentication failed", http.StatusInternalServerError)
		return
	}
	if user == nil {
		log.V(4).Info("Authentication failed: the API server did not authenticate the token")
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	spec := authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extraOf(user.Extra),
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: req.URL.Path, Verb: strings.ToLower(req.Method)},
	}
	allowed, reason, err := g.authorize(req.Context(), spec)
	if err != nil {
		msg := fmt.Sprintf("Authorization for user %s failed", user.Username)
		log.Error(err, msg)
		http.Error(w, msg, http.StatusInternalServerError)
		return
	}
	if !allowed {
		msg := fmt.Sprintf("Authorization denied for user %s", user.Username)
		log.V(4).Info(fmt.Sprintf("%s: %s", msg, reason))
		http.Error(w, msg, http.StatusForbidden)
		return
	}
	next.ServeHTTP(w, req)
}

// bearerToken reads the token as the API server's bearer token
// authenticator does: "Bearer" in any case, a space, a non-empty token.
func bearerToken(req *http.Request) (string, bool) {
	parts := strings.SplitN(strings.TrimSpace(req.Header.Get("Authorization")), " ", 3)
	if len(parts) < 2 || !strings.EqualFold(parts[0], "bearer") || parts[1] == "" {
		return "", false
	}
	return parts[1], true
}

// authenticate returns the token's user, or nil if the API server does not
// authenticate the token. Both answers are cached; errors are not.
func (g *guard) authenticate(ctx context.Context, token string) (*authenticationv1.UserInfo, error) {
	key := sha256.Sum256([]byte(token))
	if cached, ok := g.users.Get(key); ok {
		return cached.(*authenticationv1.UserInfo), nil
	}
	var review *authenticationv1.TokenReview
	err := g.ask(ctx, func(ctx context.Context) (err error) {
		review, err = g.tokens.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reviewing the token: %w", err)
	}
	var user *authenticationv1.UserInfo
	if review.Status.Authenticated {
		user = &review.Status.User
		// As the API server's authenticated group adder does.
		if !slices.Contains(user.Groups, "system:authenticated") {
			user.Groups = append(user.Groups, "system:authenticated")
		}
	}
	g.users.Add(key, user, tokenTTL)
	return user, nil
}

// authorize asks whether spec is allowed, with the reason the API server
// gives, caching allowed answers for allowTTL and others for denyTTL.
func (g *guard) authorize(ctx context.Context, spec authorizationv1.SubjectAccessReviewSpec) (bool, string, error) {
	raw, err := json.Marshal(spec)
	if err != nil {
		return false, "", fmt.Errorf("encoding the access review: %w", err)
	}
	key := string(raw)
	if cached, ok := g.decisions.Get(key); ok {
		return cached.(decision).allowed, cached.(decision).reason, nil
	}
	var review *authorizationv1.SubjectAccessReview
	err = g.ask(ctx, func(ctx context.Context) (err error) {
		review, err = g.access.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return false, "", fmt.Errorf("reviewing the access: %w", err)
	}
	d := decision{allowed: review.Status.Allowed && !review.Status.Denied, reason: review.Status.Reason}
	ttl := denyTTL
	if d.allowed {
		ttl = allowTTL
	}
	g.decisions.Add(key, d, ttl)
	return d.allowed, d.reason, nil
}

type decision struct {
	allowed bool
	reason  string
}

// ask makes one review call, each attempt bounded by reviewTimeout, retried
// with backoff on the errors the API server's own webhook client retries.
func (g *guard) ask(ctx context.Context, call func(context.Context) error) error {
	return retry.OnError(g.backoff, transient, func() error {
		ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
		defer cancel()
		return call(ctx)
	})
}

// transient is k8s.io/apiserver's webhook.DefaultShouldRetry.
func transient(err error) bool {
	if utilnet.IsConnectionReset(err) || utilnet.IsHTTP2ConnectionLost(err) || apierrors.IsInternalError(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) {
		return true
	}
	_, delay := apierrors.SuggestsClientDelay(err)
	return delay
}

func extraOf(extra map[string]authenticationv1.ExtraValue) map[string]authorizationv1.ExtraValue {
	if extra == nil {
		return nil
	}
	out := make(map[string]authorizationv1.ExtraValue, len(extra))
	for k, v := range extra {
		out[k] = authorizationv1.ExtraValue(v)
	}
	return out
}
