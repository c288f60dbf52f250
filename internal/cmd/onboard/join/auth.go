package join

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/token/tokenfile"
	"k8s.io/client-go/kubernetes"
)

// User is an authenticated caller.
type User struct {
	Name   string
	Groups []string
}

// ErrUnauthenticated is returned for a missing, unknown or rejected bearer token.
var ErrUnauthenticated = errors.New("unauthenticated")

// Authenticator checks a bearer token.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (User, error)
}

// StaticTokens is kube-apiserver's static token file (--token-auth-file), read by the API
// server's own parser: CSV lines token,user,uid[,"group1,group2"].
type StaticTokens struct{ auth *tokenfile.TokenAuthenticator }

// LoadStaticTokens reads a token file. Errors name the line, never the token.
func LoadStaticTokens(path string) (*StaticTokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("token file %s holds no token", path)
	}
	auth, err := tokenfile.NewCSV(path)
	if err != nil {
		// encoding/csv's errors give the line and column, tokenfile's the column count: no content.
		return nil, fmt.Errorf("token file %s: want token,user,uid[,\"groups\"] lines: %w", path, err)
	}
	return &StaticTokens{auth: auth}, nil
}

// Authenticate looks the token up as kube-apiserver does.
func (s *StaticTokens) Authenticate(ctx context.Context, token string) (User, error) {
	resp, ok, err := s.auth.AuthenticateToken(ctx, token)
	if err != nil || !ok {
		return User{}, ErrUnauthenticated
	}
	return User{Name: resp.User.GetName(), Groups: resp.User.GetGroups()}, nil
}

// TokenReviewer asks the API server (TokenReview) whether the token is valid for one of
// Audiences. With an audience of its own (the chart sets edgetel-onboard), a pod's ordinary
// ServiceAccount token, minted for the API server, is refused: callers need a token requested
// for this audience (kubectl create token --audience).
type TokenReviewer struct {
	Client    kubernetes.Interface
	Audiences []string
}

// Authenticate creates a TokenReview.
func (t TokenReviewer) Authenticate(ctx context.Context, token string) (User, error) {
	tr, err := t.Client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: t.Audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return User{}, fmt.Errorf("token review: %w", err)
	}
	if !tr.Status.Authenticated {
		return User{}, ErrUnauthenticated
	}
	// The API documents status.audiences as the intersection of the requested audiences and
	// the token's; a reviewer that does not fill it in is not audience-aware and proves nothing.
	if len(t.Audiences) > 0 && !slices.ContainsFunc(tr.Status.Audiences, func(a string) bool { return slices.Contains(t.Audiences, a) }) {
		return User{}, ErrUnauthenticated
	}
	return User{Name: tr.Status.User.Username, Groups: tr.Status.User.Groups}, nil
}

// Authenticators tries each in turn; the first that accepts wins.
type Authenticators []Authenticator

// Authenticate implements Authenticator.
func (a Authenticators) Authenticate(ctx context.Context, token string) (User, error) {
	var errs []error
	for _, x := range a {
		u, err := x.Authenticate(ctx, token)
		if err == nil {
			return u, nil
		}
		if !errors.Is(err, ErrUnauthenticated) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return User{}, errors.Join(errs...)
	}
	return User{}, ErrUnauthenticated
}

// Allowed names the users and groups that may get join commands. Empty lists allow nobody.
type Allowed struct {
	Users  []string
	Groups []string
}

// everyone are groups every caller of a kind is in: allowing one would hand the join token to
// every pod (or every user) of the cluster.
var everyone = []string{"system:authenticated", "system:unauthenticated", "system:serviceaccounts"}

// Validate refuses an allow-list that names nobody or everybody. The messages name the flags.
func (a Allowed) Validate() error {
	if len(a.Users) == 0 && len(a.Groups) == 0 {
		return errors.New("the join API allows nobody: name who may join edge nodes with -allowed-users or -allowed-groups " +
			"(chart: onboard.controller.joinAPI.allowedUsers / allowedGroups)")
	}
	for _, g := range a.Groups {
		if slices.Contains(everyone, g) {
			return fmt.Errorf("-allowed-groups %s: that group holds every caller; name the group of the users who join edge nodes", g)
		}
	}
	for _, u := range a.Users {
		if u == "*" || u == "" {
			return fmt.Errorf("-allowed-users %q: name users, not a wildcard", u)
		}
	}
	return nil
}

func (a Allowed) permits(u User) bool {
	if slices.Contains(a.Users, u.Name) {
		return true
	}
	for _, g := range u.Groups {
		if slices.Contains(a.Groups, g) {
			return true
		}
	}
	return false
}
