package join

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// apiServerTokens plays the API server's TokenReview: each token has a user, groups and the
// audiences it was minted for; status.audiences is the intersection, as the API documents.
func apiServerTokens(t *testing.T, f *fixture) *[]authnv1.TokenReviewSpec {
	type tok struct {
		user      string
		groups    []string
		audiences []string
	}
	tokens := map[string]tok{
		// A pod's projected ServiceAccount token, minted for the API server.
		"pod-sa-token": {"system:serviceaccount:default:app", []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"},
			[]string{"https://kubernetes.default.svc.cluster.local"}},
		// The same ServiceAccount with a token requested for the join API's audience.
		"pod-onboard-token": {"system:serviceaccount:default:app", []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"},
			[]string{"edgetel-onboard"}},
		// An operator in the allowed group, token for the join API's audience.
		"admin-onboard-token": {"alice", []string{"edge-admins", "system:authenticated"}, []string{"edgetel-onboard"}},
		"admin-api-token":     {"alice", []string{"edge-admins", "system:authenticated"}, []string{"https://kubernetes.default.svc.cluster.local"}},
	}
	var seen []authnv1.TokenReviewSpec
	f.kube.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		seen = append(seen, tr.Spec)
		tk, ok := tokens[tr.Spec.Token]
		if !ok {
			return true, tr, nil
		}
		var both []string
		for _, a := range tk.audiences {
			if len(tr.Spec.Audiences) == 0 || slices.Contains(tr.Spec.Audiences, a) {
				both = append(both, a)
			}
		}
		if len(both) == 0 {
			return true, tr, nil // the API server: "token audiences ... is invalid for the target audiences"
		}
		tr.Status = authnv1.TokenReviewStatus{Authenticated: true, Audiences: both, User: authnv1.UserInfo{Username: tk.user, Groups: tk.groups}}
		return true, tr, nil
	})
	return &seen
}

func (f *fixture) as(t *testing.T, token string, query string) (int, response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/v1alpha1/nodes/join?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return f.do(t, req)
}

func TestServiceAccountOutsideAllowedGroupsGetsNoToken(t *testing.T) {
	f := newFixture(t, defaults(), baseObjects()...)
	seen := apiServerTokens(t, f)
	f.srv.cfg.Auth = TokenReviewer{Client: f.kube, Audiences: []string{"edgetel-onboard"}}
	query := q("edge-new", "10.20.0.9").Encode()

	// A valid ServiceAccount token for the right audience, outside the allowed groups: 403.
	code, resp, raw := f.as(t, "pod-onboard-token", query)
	assert.Equal(t, http.StatusForbidden, code, raw)
	assert.Contains(t, resp.Message, `user "system:serviceaccount:default:app" may not join edge nodes`)
	assert.Empty(t, resp.Data)
	assert.NotContains(t, raw, joinToken)

	// The pod's ordinary token is not even for this audience: 401.
	code, _, raw = f.as(t, "pod-sa-token", query)
	assert.Equal(t, http.StatusUnauthorized, code, raw)
	assert.NotContains(t, raw, joinToken)
	code, _, raw = f.as(t, "admin-api-token", query)
	assert.Equal(t, http.StatusUnauthorized, code, "an allowed user's token for another audience is refused too: %s", raw)

	// An allowed caller with a token for the audience gets the command.
	code, resp, raw = f.as(t, "admin-onboard-token", query)
	require.Equal(t, http.StatusOK, code, raw)
	assert.Contains(t, resp.Data, "'--token="+joinToken+"'")

	require.NotEmpty(t, *seen)
	for _, spec := range *seen {
		assert.Equal(t, []string{"edgetel-onboard"}, spec.Audiences, "every TokenReview names the audience")
	}
}

func TestAudienceUnawareReviewIsRefused(t *testing.T) {
	f := newFixture(t, defaults(), baseObjects()...)
	f.kube.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "alice", Groups: []string{"edge-admins"}}}
		return true, tr, nil
	})
	f.srv.cfg.Auth = TokenReviewer{Client: f.kube, Audiences: []string{"edgetel-onboard"}}
	code, _, raw := f.as(t, "any", q("edge-new", "10.20.0.9").Encode())
	assert.Equal(t, http.StatusUnauthorized, code, "no status.audiences: the reviewer did not check ours: %s", raw)
}

func TestDenyByDefault(t *testing.T) {
	assert.False(t, Allowed{}.permits(User{Name: "alice", Groups: []string{"system:authenticated", "edge-admins"}}), "an empty allow-list allows nobody")
	assert.True(t, Allowed{Users: []string{"alice"}}.permits(User{Name: "alice"}))
	assert.True(t, Allowed{Groups: []string{"edge-admins"}}.permits(User{Name: "bob", Groups: []string{"edge-admins"}}))
	assert.False(t, Allowed{Groups: []string{"edge-admins"}}.permits(User{Name: "bob", Groups: []string{"system:authenticated"}}))

	f := newFixture(t, defaults(), baseObjects()...)
	for name, allow := range map[string]Allowed{
		"nobody":          {},
		"every SA":        {Groups: []string{"system:serviceaccounts"}},
		"everybody":       {Groups: []string{"system:authenticated"}},
		"wildcard user":   {Users: []string{"*"}},
		"unauthenticated": {Groups: []string{"edge-admins", "system:unauthenticated"}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := f.srv.cfg
			cfg.Allow, cfg.Registry = allow, nil
			_, err := NewServer(cfg)
			require.Error(t, err)
			assert.Regexp(t, `-allowed-(users|groups)`, err.Error())
		})
	}
}

func TestFloodOfNewNamesStaysBounded(t *testing.T) {
	f := newFixture(t, defaults(), baseObjects()...)
	// Rates out of the way: this is about the reservations' bound.
	f.srv.limiters = newLimiters(RateLimit{QPS: 1e6, Burst: 1e6})
	f.srv.sources = newLimiters(RateLimit{QPS: 1e6, Burst: 1e6})
	f.srv.cfg.Reservations.Max, f.srv.cfg.Reservations.MaxPerUser = 15, 10
	codes := map[int]int{}
	var last response
	for i := 0; i < 200; i++ {
		code, resp, _ := f.as(t, bearer, q(fmt.Sprintf("flood-%d", i), fmt.Sprintf("10.30.%d.%d", i/250, 1+i%250)).Encode())
		codes[code]++
		if code != http.StatusOK {
			last = resp
		}
	}
	assert.Equal(t, map[int]int{200: 10, 429: 190}, codes)
	assert.Contains(t, last.Message, "too many nodes joining for user console")
	assert.Equal(t, 10, f.reservations(t), "one caller holds at most MaxPerUser reservations")

	// Another allowed caller is still answered, up to the total bound.
	for i := 0; i < 5; i++ {
		code, _, raw := f.as(t, otherBearer, q(fmt.Sprintf("edge-ok-%d", i), fmt.Sprintf("10.40.0.%d", 1+i)).Encode())
		require.Equal(t, http.StatusOK, code, raw)
	}
	code, resp, _ := f.as(t, otherBearer, q("edge-ok-9", "10.40.0.99").Encode())
	assert.Equal(t, http.StatusTooManyRequests, code)
	assert.Contains(t, resp.Message, "too many nodes joining: 15 join commands are outstanding (limit 15)")
	assert.Equal(t, 15, f.reservations(t))
	// Renewing a held reservation is not a new one.
	code, _, _ = f.as(t, bearer, q("flood-0", "10.30.0.1").Encode())
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, 191.0, testutil.ToFloat64(f.srv.throttled.WithLabelValues("reservations")))
}

func TestRateLimitPerCaller(t *testing.T) {
	f := newFixture(t, defaults(), baseObjects()...)
	f.srv.limiters = newLimiters(RateLimit{QPS: 0.001, Burst: 5})
	// All from httptest's one address: this is about the per-caller bucket.
	f.srv.sources = newLimiters(RateLimit{QPS: 1e6, Burst: 1e6})
	codes := map[int]int{}
	var rec *httptest.ResponseRecorder
	for i := 0; i < 100; i++ {
		req := httptest.NewRequest(http.MethodGet, "/nodes/join?"+q(fmt.Sprintf("flood-%d", i), fmt.Sprintf("10.30.0.%d", 1+i)).Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		rec = httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		codes[rec.Code]++
	}
	assert.Equal(t, map[int]int{200: 5, 429: 95}, codes)
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
	assert.Contains(t, rec.Body.String(), "too many join requests from user console")
	assert.Equal(t, 95.0, testutil.ToFloat64(f.srv.throttled.WithLabelValues("rate")))
	assert.Equal(t, 95.0, testutil.ToFloat64(f.srv.requests.WithLabelValues("429")))
	// The flood is one caller's: another allowed caller is answered.
	code, resp, raw := f.as(t, otherBearer, q("edge-ok", "10.40.0.1").Encode())
	require.Equal(t, http.StatusOK, code, raw)
	assert.Contains(t, resp.Data, joinToken)
	// Unauthenticated floods never reach the buckets, so they cannot spend an allowed caller's.
	assert.Len(t, f.srv.limiters.m, 2)
}

// TestRateLimitBeforeTokenReview: a flood of made-up tokens from one address is throttled
// before authentication, so it costs the API server at most the source bucket's burst of
// TokenReviews; another address is still answered.
func TestRateLimitBeforeTokenReview(t *testing.T) {
	f := newFixture(t, defaults(), baseObjects()...)
	seen := apiServerTokens(t, f)
	f.srv.cfg.Auth = TokenReviewer{Client: f.kube, Audiences: []string{"edgetel-onboard"}}
	f.srv.sources = newLimiters(RateLimit{QPS: 0.001, Burst: 20})
	codes := map[int]int{}
	for i := 0; i < 200; i++ {
		req := httptest.NewRequest(http.MethodGet, "/nodes/join?"+q("edge-new", "10.20.0.9").Encode(), nil)
		req.RemoteAddr = fmt.Sprintf("198.51.100.7:%d", 40000+i)
		req.Header.Set("Authorization", fmt.Sprintf("Bearer made-up-%d", i))
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		codes[rec.Code]++
	}
	assert.Equal(t, map[int]int{401: 20, 429: 180}, codes)
	assert.Len(t, *seen, 20, "throttled requests never reach TokenReview")
	assert.Equal(t, 180.0, testutil.ToFloat64(f.srv.throttled.WithLabelValues("source")))

	req := httptest.NewRequest(http.MethodGet, "/nodes/join?"+q("edge-new", "10.20.0.9").Encode(), nil)
	req.RemoteAddr = "198.51.100.8:40000"
	req.Header.Set("Authorization", "Bearer admin-onboard-token")
	code, resp, raw := f.do(t, req)
	require.Equal(t, http.StatusOK, code, raw)
	assert.Contains(t, resp.Data, joinToken)
}

func (f *fixture) reservations(t *testing.T) int {
	t.Helper()
	cm, err := f.kube.CoreV1().ConfigMaps("edgetel").Get(context.Background(), "edgetel-onboard-joins", metav1.GetOptions{})
	require.NoError(t, err)
	return len(cm.Data)
}
