package join

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// KubeEdge's and edge-watcher's object names (docs/kubeedge.md §4, §6).
const (
	CloudcoreConfigMap = "cloudcore"
	CloudcoreKey       = "cloudcore.yaml"
	TokenSecret        = "tokensecret"
	TokenKey           = "tokendata"
	SettingsConfigMap  = "edge-watcher-config"
)

// Config is what the join service needs.
type Config struct {
	Client kubernetes.Interface
	Auth   Authenticator
	Allow  Allowed
	Logger *slog.Logger
	// KubeEdgeNamespace holds cloudcore's ConfigMap, the token Secret and the settings ConfigMap.
	KubeEdgeNamespace string
	SettingsConfigMap string
	// Defaults apply where the settings ConfigMap is absent or leaves a key empty.
	Defaults Settings
	// Reservations hold "joining" nodes between the command being issued and the Node appearing.
	Reservations ReservationStore
	// Registry receives edgetel_onboard_join_requests_total; nil keeps it private.
	Registry prometheus.Registerer
	// RateLimit bounds each caller's requests; zero values mean DefaultRateLimit.
	RateLimit RateLimit
	// SourceRateLimit bounds each client address's requests before they are authenticated, so
	// that a flood of made-up tokens cannot turn into as many TokenReviews on the API server;
	// zero values mean DefaultSourceRateLimit.
	SourceRateLimit RateLimit
}

// RateLimit is a token bucket per authenticated user.
type RateLimit struct {
	// QPS is the sustained rate, Burst how many requests may come at once.
	QPS   float32
	Burst int
}

// DefaultRateLimit lets a console validate and fetch commands for a handful of nodes at once,
// and then one request every two seconds.
var DefaultRateLimit = RateLimit{QPS: 0.5, Burst: 10}

// DefaultSourceRateLimit is ten callers' worth: a console such as KubeSphere's forwards all its
// users from one address.
var DefaultSourceRateLimit = RateLimit{QPS: 5, Burst: 100}

// Server is the join HTTP API.
type Server struct {
	cfg       Config
	log       *slog.Logger
	requests  *prometheus.CounterVec
	throttled *prometheus.CounterVec
	limiters  *limiters
	sources   *limiters
}

// NewServer checks the configuration. An allow-list that names nobody is refused: the join
// API denies by default.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Client == nil || cfg.Auth == nil || cfg.Reservations.Client == nil {
		return nil, errors.New("join service: Kubernetes client, authenticator and reservation store are required")
	}
	if err := cfg.Allow.Validate(); err != nil {
		return nil, fmt.Errorf("join service: %w", err)
	}
	if cfg.RateLimit.QPS <= 0 || cfg.RateLimit.Burst <= 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.SourceRateLimit.QPS <= 0 || cfg.SourceRateLimit.Burst <= 0 {
		cfg.SourceRateLimit = DefaultSourceRateLimit
	}
	if cfg.KubeEdgeNamespace == "" {
		cfg.KubeEdgeNamespace = "kubeedge"
	}
	if cfg.SettingsConfigMap == "" {
		cfg.SettingsConfigMap = SettingsConfigMap
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgetel_onboard_join_requests_total",
		Help: "Join API requests by HTTP status code."}, []string{"code"})
	throttled := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgetel_onboard_join_throttled_total",
		Help: "Join API requests answered 429, by reason (source: the client address's rate limit, before authentication; rate: the caller's rate limit; reservations: too many nodes joining)."},
		[]string{"reason"})
	for _, c := range []prometheus.Collector{requests, throttled} {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("join service metrics: %w", err)
		}
	}
	return &Server{cfg: cfg, log: cfg.Logger.With("component", "join"), requests: requests, throttled: throttled,
		limiters: newLimiters(cfg.RateLimit), sources: newLimiters(cfg.SourceRateLimit)}, nil
}

// response is edge-watcher's JSON shape.
type response struct {
	Code    uint32 `json:"code,omitempty"`
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Data    string `json:"data,omitempty"`
}

// ServeHTTP answers GET .../nodes/join on any prefix: /api/v1alpha1/nodes/join (edge-watcher,
// what KubeSphere's proxy forwards to), /nodes/join, and the /kapis/... forms.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := &codeWriter{ResponseWriter: w}
	defer func() { s.requests.WithLabelValues(strconv.Itoa(cw.code)).Inc() }()
	s.serve(cw, r)
}

type codeWriter struct {
	http.ResponseWriter
	code int
}

func (c *codeWriter) WriteHeader(code int) {
	c.code = code
	c.ResponseWriter.WriteHeader(code)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/nodes/join") {
		write(w, http.StatusNotFound, "no such path; the join API is GET /api/v1alpha1/nodes/join")
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		write(w, http.StatusMethodNotAllowed, "the join API only answers GET")
		return
	}
	// Before authentication: a TokenReview per request is the API server's work.
	if wait, ok := s.sources.allow(source(r)); !ok {
		s.throttled.WithLabelValues("source").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+1)))
		write(w, http.StatusTooManyRequests, "too many join requests from this address; retry later")
		return
	}
	user, code, err := s.authenticate(r)
	if err != nil {
		s.log.Info("join refused", "reason", err.Error(), "remote", r.RemoteAddr)
		s.refuse(w, code, err)
		return
	}
	if wait, ok := s.limiters.allow(user.Name); !ok {
		s.throttled.WithLabelValues("rate").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+1)))
		write(w, http.StatusTooManyRequests, fmt.Sprintf("too many join requests from user %s: at most %d at once and %g per second; retry later",
			user.Name, s.cfg.RateLimit.Burst, s.cfg.RateLimit.QPS))
		return
	}
	cmd, code, err := s.join(r.Context(), r.URL.Query(), user)
	if err != nil {
		if code == http.StatusTooManyRequests {
			s.throttled.WithLabelValues("reservations").Inc()
			w.Header().Set("Retry-After", "60")
		}
		s.log.Info("join refused", "user", user.Name, "code", code, "reason", err.Error())
		s.refuse(w, code, err)
		return
	}
	// The command carries the join token: log who asked for which node, never the command.
	s.log.Info("join command issued", "user", user.Name, "node", r.URL.Query().Get("node_name"), "ip", r.URL.Query().Get("node_ip"))
	writeJSON(w, response{Code: http.StatusOK, Status: "Succeeded", Data: cmd})
}

// refuse answers err's text for the caller's own mistakes (4xx); a 500's cause (the API
// server's error text, the cluster's configuration) is in the log only.
func (s *Server) refuse(w http.ResponseWriter, code int, err error) {
	if code >= http.StatusInternalServerError {
		write(w, code, "internal error: the join service could not prepare the command; its log says why")
		return
	}
	write(w, code, err.Error())
}

// source is the client's address without its port: each connection has a new port.
func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func write(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, response{Code: uint32(code), Status: "Failure", Message: msg})
}

func writeJSON(w http.ResponseWriter, resp response) {
	w.Header().Set("Content-Type", "text/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(int(resp.Code))
	enc := json.NewEncoder(w)
	// The command has &&, < and > that HTML escaping would turn into \u0026 and friends.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(resp)
}

func (s *Server) authenticate(r *http.Request) (User, int, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		return User{}, http.StatusUnauthorized, errors.New("unauthenticated: an Authorization: Bearer token is required")
	}
	u, err := s.cfg.Auth.Authenticate(r.Context(), strings.TrimSpace(token))
	if errors.Is(err, ErrUnauthenticated) {
		return User{}, http.StatusUnauthorized, errors.New("unauthenticated: the bearer token was not accepted")
	}
	if err != nil {
		return User{}, http.StatusInternalServerError, fmt.Errorf("authenticating the caller: %w", err)
	}
	if !s.cfg.Allow.permits(u) {
		return User{}, http.StatusForbidden, fmt.Errorf("forbidden: user %q may not join edge nodes", u.Name)
	}
	return u, 0, nil
}

// maxParam bounds every query value before it is even parsed.
const maxParam = 253

// ParseRequest validates the query parameters; every error is a 400 and names what is wrong
// with "name" or "IP" in it where the console shows it next to that field.
func ParseRequest(q url.Values) (Request, error) {
	for key, vals := range q {
		if len(vals) > 1 {
			return Request{}, fmt.Errorf("parameter %s given %d times", key, len(vals))
		}
	}
	name, ip := q.Get("node_name"), q.Get("node_ip")
	if name == "" {
		return Request{}, errors.New("Invalid node name: node_name is required")
	}
	if len(name) > maxParam || !utf8.ValidString(name) {
		return Request{}, fmt.Errorf("Invalid node name: longer than %d bytes or not UTF-8", maxParam)
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return Request{}, fmt.Errorf("Invalid node name: %s", strings.Join(msgs, "; "))
	}
	addr, err := parseUnicast(ip)
	if err != nil {
		return Request{}, err
	}
	req := Request{NodeName: name, NodeIP: addr}
	switch t := q.Get("add_default_taint"); t {
	case "", "false":
	case "true":
		req.Taint = true
	default:
		return Request{}, fmt.Errorf("Invalid add_default_taint %q: want true or false", clip(t))
	}
	if a := q.Get("arch"); a != "" {
		if _, ok := Arches[a]; !ok {
			return Request{}, fmt.Errorf("Invalid arch %q: want amd64, arm64 or arm", clip(a))
		}
		req.Arch = a
	}
	return req, nil
}

// clip keeps hostile input out of messages in bulk; %q already escapes what remains.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func parseUnicast(ip string) (string, error) {
	if ip == "" {
		return "", errors.New("Invalid node IP: node_ip is required")
	}
	if len(ip) > 45 {
		return "", fmt.Errorf("Invalid node IP: longer than 45 characters")
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return "", fmt.Errorf("Invalid node IP: %q is not an IP address", clip(ip))
	}
	a = a.Unmap()
	if !a.IsGlobalUnicast() {
		return "", fmt.Errorf("Invalid node IP: %s is not a unicast address a node can use (loopback, link-local, multicast, broadcast and unspecified are refused)", a)
	}
	return a.String(), nil
}

// join validates the request against the cluster and renders the command, or returns the HTTP
// code and message edge-watcher would.
func (s *Server) join(ctx context.Context, q url.Values, user User) (string, int, error) {
	req, err := ParseRequest(q)
	if err != nil {
		return "", http.StatusBadRequest, err
	}
	settings, err := s.settings(ctx)
	if err != nil {
		return "", http.StatusBadRequest, err
	}
	nodes, err := s.cfg.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", http.StatusInternalServerError, fmt.Errorf("List nodes error: %w", err)
	}
	if err := checkNodes(nodes.Items, req); err != nil {
		return "", http.StatusBadRequest, err
	}
	cc, token, err := s.cloudcore(ctx, settings)
	if err != nil {
		return "", http.StatusInternalServerError, err
	}
	if err := s.cfg.Reservations.Reserve(ctx, req.NodeName, req.NodeIP, user.Name, nodes.Items); err != nil {
		var busy *ReservedError
		if errors.As(err, &busy) {
			return "", http.StatusBadRequest, err
		}
		var full *FullError
		if errors.As(err, &full) {
			return "", http.StatusTooManyRequests, err
		}
		return "", http.StatusInternalServerError, err
	}
	return Script(settings, cc, token, req), 0, nil
}

func checkNodes(nodes []corev1.Node, req Request) error {
	for _, n := range nodes {
		if n.Name == req.NodeName {
			return fmt.Errorf("Node name %s in use", req.NodeName)
		}
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue
			}
			if other, err := netip.ParseAddr(a.Address); err == nil && other.Unmap().String() == req.NodeIP {
				return fmt.Errorf("Node IP %s in use by node %s", req.NodeIP, n.Name)
			}
		}
	}
	return nil
}

// settings reads the settings ConfigMap over the defaults; a bad value is refused as
// edge-watcher did, with the value named.
func (s *Server) settings(ctx context.Context) (Settings, error) {
	cm, err := s.cfg.Client.CoreV1().ConfigMaps(s.cfg.KubeEdgeNamespace).Get(ctx, s.cfg.SettingsConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return s.cfg.Defaults, s.cfg.Defaults.Validate()
	case err != nil:
		return Settings{}, fmt.Errorf("Read %s configmap error: %w", s.cfg.SettingsConfigMap, err)
	}
	st, err := s.cfg.Defaults.Overlay(cm.Data)
	if err != nil {
		return Settings{}, fmt.Errorf("EdgeNodeJoin: %s configured, but the given values were incorrect: %w", s.cfg.SettingsConfigMap, err)
	}
	return st, nil
}

func (s *Server) cloudcore(ctx context.Context, st Settings) (Cloudcore, string, error) {
	ns := s.cfg.KubeEdgeNamespace
	cm, err := s.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, CloudcoreConfigMap, metav1.GetOptions{})
	if err != nil {
		return Cloudcore{}, "", fmt.Errorf("Read cloudcore configmap error: %w", err)
	}
	cc, err := ParseCloudcoreConfig(cm.Data[CloudcoreKey])
	if err != nil {
		return Cloudcore{}, "", fmt.Errorf("Unmarshal cloudcore configmap error: %w", err)
	}
	if st.CloudcoreAddress != "" {
		cc.Address = st.CloudcoreAddress
	}
	if err := cc.validate(); err != nil {
		return Cloudcore{}, "", fmt.Errorf("cloudcore configmap %s/%s: %w", ns, CloudcoreConfigMap, err)
	}
	sec, err := s.cfg.Client.CoreV1().Secrets(ns).Get(ctx, TokenSecret, metav1.GetOptions{})
	if err != nil {
		return Cloudcore{}, "", fmt.Errorf("Read cloudcore token secret error: %w", err)
	}
	token := strings.TrimSpace(string(sec.Data[TokenKey]))
	if len(token) > 8192 || !tokenRE.MatchString(token) {
		// Never echo the value: it is a credential even when malformed.
		return Cloudcore{}, "", fmt.Errorf("Read cloudcore token secret error: %s/%s key %s is not a <ca-hash>.<jwt> token", ns, TokenSecret, TokenKey)
	}
	return cc, token, nil
}

// ListenAndServe serves the API until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string, tlsCert, tlsKey string) error {
	srv := &http.Server{Addr: addr, Handler: s, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() {
		if tlsCert != "" {
			errc <- srv.ListenAndServeTLS(tlsCert, tlsKey)
			return
		}
		errc <- srv.ListenAndServe()
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("join service: %w", err)
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	}
}
