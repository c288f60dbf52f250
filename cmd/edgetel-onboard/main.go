// Command edgetel-onboard onboards KubeEdge edge nodes: role controller serves the join API and
// keeps the IPTablesRules object; role agent applies those rules on the API server's hosts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/edgetel/edgetel/internal/cmd/onboard"
	"github.com/edgetel/edgetel/internal/cmd/onboard/agent"
	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
	"github.com/edgetel/edgetel/internal/cmd/onboard/join"
	"github.com/edgetel/edgetel/internal/cmd/onboard/policy"
	"github.com/edgetel/edgetel/internal/cmd/onboard/rules"
	"github.com/edgetel/edgetel/internal/kube"
)

const usage = `usage: edgetel-onboard controller|agent [flags]
  controller  join API and rules controller (run as a Deployment; leader-elected)
  agent       applies the rules on this host (run as a hostNetwork DaemonSet on API server hosts)
Run "edgetel-onboard <role> -h" for the role's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "edgetel-onboard:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("a role is required")
	}
	switch args[0] {
	case "controller":
		cfg, err := parseController(args[1:], stderr)
		if err != nil {
			return err
		}
		return runController(ctx, cfg)
	case "agent":
		cfg, err := parseAgent(args[1:], stderr)
		if err != nil {
			return err
		}
		return runAgent(ctx, cfg)
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown role %q", args[0])
	}
}

type common struct {
	kubeconfig    string
	namespace     string
	rulesName     string
	metricsListen string
	logLevel      string
}

// register adds the flags both roles take; metrics is -metrics-listen's default.
func (c *common) register(fs *flag.FlagSet, metrics string) {
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file; empty uses the in-cluster config")
	fs.StringVar(&c.namespace, "namespace", envOr("POD_NAMESPACE", "edgetel"), "namespace of the IPTablesRules object, the lease and the join reservations (env POD_NAMESPACE)")
	fs.StringVar(&c.rulesName, "rules-name", "edgetel-onboard", "name of the IPTablesRules object")
	fs.StringVar(&c.metricsListen, "metrics-listen", metrics, "address of /metrics and /healthz; empty disables")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
}

type controllerConfig struct {
	common
	kubeEdgeNamespace string
	listen            string
	tlsCert, tlsKey   string
	tokenFile         string
	tokenReview       bool
	audiences         string
	allowedUsers      string
	allowedGroups     string
	settings          join.Settings
	labels            string
	keadmSHA512       string
	extraFlags        string
	settingsConfigMap string
	reservations      string
	reservationTTL    time.Duration
	maxReservations   int
	maxPerUser        int
	rateQPS           float64
	rateBurst         int
	dnat              dnatFlags
	model             string
	cloudcoreService  string
	streamPort        int
	edgeSelector      string
	leaderElect       bool
	leaseName         string
	identity          string
	disableJoin       bool
	disableRules      bool
}

func parseController(args []string, out io.Writer) (controllerConfig, error) {
	var c controllerConfig
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	fs.SetOutput(out)
	c.common.register(fs, ":8080")
	fs.StringVar(&c.kubeEdgeNamespace, "kubeedge-namespace", "kubeedge", "namespace of cloudcore, its ConfigMaps, the token Secret and the tunnelport ConfigMap")
	fs.StringVar(&c.listen, "listen", ":8081", "join API address (edge-watcher's port)")
	fs.StringVar(&c.tlsCert, "tls-cert-file", "", "certificate of the join API (required: it serves the cluster's join token)")
	fs.StringVar(&c.tlsKey, "tls-key-file", "", "key for -tls-cert-file")
	fs.StringVar(&c.tokenFile, "token-auth-file", "", "static bearer tokens, kube-apiserver format (its own parser): token,user,uid[,\"groups\"]")
	fs.BoolVar(&c.tokenReview, "token-review", true, "check bearer tokens with the API server's TokenReview")
	fs.StringVar(&c.audiences, "token-review-audiences", "", "comma-separated audiences a reviewed token must be valid for (required with -token-review)")
	fs.StringVar(&c.allowedUsers, "allowed-users", "", "comma-separated users allowed to get join commands (this or -allowed-groups is required: nobody by default)")
	fs.StringVar(&c.allowedGroups, "allowed-groups", "", "comma-separated groups allowed to get join commands")
	fs.IntVar(&c.maxReservations, "max-reservations", join.DefaultMaxReservations, "most nodes joining at once (outstanding join commands)")
	fs.IntVar(&c.maxPerUser, "max-reservations-per-user", join.DefaultMaxReservationsPerUser, "most nodes joining at once per caller")
	fs.Float64Var(&c.rateQPS, "rate-limit-qps", float64(join.DefaultRateLimit.QPS), "join requests per second per caller")
	fs.IntVar(&c.rateBurst, "rate-limit-burst", join.DefaultRateLimit.Burst, "join requests per caller at once")
	fs.StringVar((*string)(&c.settings.Flavor), "flavor", string(join.FlavorUpstream), "keadm the command is for: upstream or kubesphere")
	fs.StringVar(&c.settings.Version, "kubeedge-version", envOr("VERSION", "v1.23.0"), "KubeEdge version (env VERSION)")
	fs.StringVar(&c.settings.Region, "region", envOr("REGION", "en"), "zh or en: KubeSphere's default mirror (env REGION)")
	fs.StringVar(&c.settings.Mirror, "mirror", "", "keadm download URL with {version} and {arch}, or a base URL")
	fs.StringVar(&c.labels, "labels", "", "node labels k=v,k2=v2 for keadm --labels")
	fs.StringVar(&c.keadmSHA512, "keadm-sha512", "", "SHA-512 of the keadm tarball per architecture, amd64=<hex>,arm64=<hex>,arm=<hex>; empty: the command checks the checksum file published next to the tarball")
	fs.StringVar(&c.extraFlags, "extra-flags", "", "space-separated extra keadm join flags (--name=value)")
	fs.StringVar(&c.settings.CloudcoreAddress, "cloudcore-address", "", "address edge nodes dial instead of cloudcore's advertiseAddress[0]")
	fs.StringVar(&c.settingsConfigMap, "settings-configmap", join.SettingsConfigMap, "ConfigMap in the kubeedge namespace overriding version, region, uri, flavor, keadmSHA512, labels, extraFlags, cloudcoreAddress")
	fs.StringVar(&c.reservations, "reservations-configmap", "edgetel-onboard-joins", "ConfigMap holding nodes that are joining; it must exist (the chart creates it): the controller may update it by name and create none")
	fs.DurationVar(&c.reservationTTL, "reservation-ttl", time.Hour, "how long a name and IP stay reserved after a command is issued")
	fs.StringVar(&c.model, "rules-model", string(apis.ModelTunnelPort), "tunnel-port (KubeEdge >= 1.8) or edge-ip (edge-watcher's)")
	fs.StringVar(&c.cloudcoreService, "cloudcore-service", "cloudcore", "Service whose EndpointSlices list the cloudcore replicas")
	fs.IntVar(&c.streamPort, "stream-port", rules.DefaultStreamPort, "cloudcore stream port when the Service has no port named cloudstream")
	fs.StringVar(&c.edgeSelector, "edge-node-selector", kube.DefaultEdgeSelector, "label selector of edge nodes")
	c.dnat.register(fs)
	fs.BoolVar(&c.leaderElect, "leader-elect", true, "run the rules controller only on the replica holding the lease")
	fs.StringVar(&c.leaseName, "leader-election-id", "edgetel-onboard", "name of the Lease; the chart creates it, and the controller may get and update it by name only")
	fs.StringVar(&c.identity, "identity", envOr("POD_NAME", hostname()), "this replica's identity in the lease (env POD_NAME)")
	fs.BoolVar(&c.disableJoin, "disable-join", false, "do not serve the join API")
	fs.BoolVar(&c.disableRules, "disable-rules", false, "do not run the rules controller")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("controller: unexpected arguments %q", fs.Args())
	}
	return c, c.validate()
}

func (c *controllerConfig) validate() error {
	var errs []error
	if c.keadmSHA512 != "" {
		sums, err := join.ParseLabels(c.keadmSHA512)
		if err != nil {
			errs = append(errs, fmt.Errorf("-keadm-sha512: %w", err))
		}
		c.settings.KeadmSHA512 = sums
	}
	if c.labels != "" {
		l, err := join.ParseLabels(c.labels)
		if err != nil {
			errs = append(errs, fmt.Errorf("-labels: %w", err))
		}
		c.settings.Labels = l
	}
	c.settings.ExtraFlags = strings.Fields(c.extraFlags)
	if !c.disableJoin {
		if err := c.settings.Validate(); err != nil {
			errs = append(errs, err)
		}
		if !c.tokenReview && c.tokenFile == "" {
			errs = append(errs, errors.New("the join API needs -token-review or -token-auth-file: callers must authenticate"))
		}
		if c.tokenReview && strings.TrimSpace(c.audiences) == "" {
			errs = append(errs, errors.New("-token-review needs -token-review-audiences: without an audience every ServiceAccount token of the cluster is accepted"))
		}
		if err := (join.Allowed{Users: splitList(c.allowedUsers), Groups: splitList(c.allowedGroups)}).Validate(); err != nil {
			errs = append(errs, err)
		}
		if c.tlsCert == "" || c.tlsKey == "" {
			errs = append(errs, errors.New("the join API hands out the cluster's join token: -tls-cert-file and -tls-key-file are required"))
		}
		if c.reservationTTL <= 0 {
			errs = append(errs, errors.New("-reservation-ttl must be positive"))
		}
		if c.maxReservations < 1 || c.maxPerUser < 1 || c.rateQPS <= 0 || c.rateBurst < 1 {
			errs = append(errs, errors.New("-max-reservations, -max-reservations-per-user, -rate-limit-qps and -rate-limit-burst must be positive"))
		}
	}
	if err := c.dnat.parse(); err != nil {
		errs = append(errs, err)
	}
	m := apis.Model(c.model)
	if !c.disableRules && m != apis.ModelEdgeIP && m != apis.ModelTunnelPort {
		errs = append(errs, fmt.Errorf("-rules-model %q: want %s or %s", c.model, apis.ModelTunnelPort, apis.ModelEdgeIP))
	}
	if c.disableJoin && c.disableRules {
		errs = append(errs, errors.New("-disable-join and -disable-rules leave nothing to run"))
	}
	return errors.Join(errs...)
}

// dnatFlags are the operator's part of the DNAT policy, shared by controller and agent.
type dnatFlags struct {
	ports     string
	forbidden string
	policy    policy.Policy
}

func (d *dnatFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.ports, "match-ports", policy.DefaultPorts, "ports a DNAT rule may match: edge kubelet and cloudcore tunnel ports (N or N-M, comma-separated)")
	fs.StringVar(&d.forbidden, "forbidden-cidrs", "", "comma-separated CIDRs or addresses no rule may match: the Service CIDR, API server addresses and VIPs")
}

func (d *dnatFlags) parse() error {
	ports, err := policy.ParsePorts(d.ports)
	if err != nil {
		return fmt.Errorf("-match-ports: %w", err)
	}
	forbidden, err := policy.ParsePrefixes(d.forbidden)
	if err != nil {
		return fmt.Errorf("-forbidden-cidrs: %w", err)
	}
	d.policy = policy.Policy{Ports: ports}
	d.policy.Forbid("a forbidden range (-forbidden-cidrs)", forbidden...)
	return nil
}

type agentConfig struct {
	common
	nodeName          string
	interval          time.Duration
	mode              string
	chain             string
	uninstall         bool
	kubeEdgeNamespace string
	cloudcoreService  string
	streamPort        int
	edgeSelector      string
	hostAddresses     bool
	dnat              dnatFlags
}

func parseAgent(args []string, out io.Writer) (agentConfig, error) {
	var c agentConfig
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(out)
	// The agent runs with the host's network: its metrics stay on loopback unless asked.
	c.common.register(fs, "127.0.0.1:9108")
	fs.StringVar(&c.nodeName, "node-name", envOr("NODE_NAME", hostname()), "this host's node name, for events (env NODE_NAME)")
	fs.DurationVar(&c.interval, "interval", 10*time.Second, "how often the rules are re-checked against iptables-save")
	fs.StringVar(&c.mode, "iptables-mode", "auto", "auto (the backend holding the host's rules), nft or legacy")
	fs.StringVar(&c.chain, "chain", agent.DefaultChain, "the nat chain the agent owns")
	fs.BoolVar(&c.uninstall, "uninstall", false, "remove the chain and its jumps, then exit")
	fs.StringVar(&c.kubeEdgeNamespace, "kubeedge-namespace", "kubeedge", "namespace of cloudcore's Service")
	fs.StringVar(&c.cloudcoreService, "cloudcore-service", "cloudcore", "Service whose ready endpoints are the only DNAT targets")
	fs.IntVar(&c.streamPort, "stream-port", rules.DefaultStreamPort, "cloudcore stream port when the Service has no port named cloudstream")
	fs.StringVar(&c.edgeSelector, "edge-node-selector", kube.DefaultEdgeSelector, "label selector of edge nodes; no rule may match another node's address")
	fs.BoolVar(&c.hostAddresses, "forbid-host-addresses", true, "refuse rules matching this host's own addresses (the API server's)")
	c.dnat.register(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := c.dnat.parse(); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("agent: unexpected arguments %q", fs.Args())
	}
	if c.interval < time.Second {
		return c, fmt.Errorf("-interval %s: at least 1s", c.interval)
	}
	if c.mode != "auto" && c.mode != "nft" && c.mode != "legacy" {
		return c, fmt.Errorf("-iptables-mode %q: want auto, nft or legacy", c.mode)
	}
	return c, nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// restConfig loads the REST config as the collector's components do (kube.RestConfig): the
// in-cluster service account, or a kubeconfig file outside a cluster.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := kube.RestConfig(kube.DefaultAPIConfig())
		if err != nil {
			return nil, fmt.Errorf("-kubeconfig: empty, and no in-cluster config (give a kubeconfig outside a cluster): %w", err)
		}
		return cfg, nil
	}
	cfg, err := kube.RestConfig(kube.APIConfig{AuthType: kube.AuthKubeConfig, KubeConfig: kubeconfig})
	if err != nil {
		return nil, fmt.Errorf("-kubeconfig: %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

func clients(kubeconfig string) (kubernetes.Interface, dynamic.Interface, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	return client, dyn, err
}

func eventRecorder(ctx context.Context, client kubernetes.Interface, component string) record.EventRecorder {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
}

// serveMetrics serves /metrics and /healthz until ctx ends.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func runController(ctx context.Context, c controllerConfig) error {
	log, err := newLogger(c.logLevel)
	if err != nil {
		return err
	}
	client, dyn, err := clients(c.kubeconfig)
	if err != nil {
		return err
	}
	reg := newRegistry()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(ctx, c.metricsListen, reg) })
	if !c.disableJoin {
		srv, err := newJoinServer(c, client, log, reg)
		if err != nil {
			return err
		}
		g.Go(func() error { return srv.ListenAndServe(ctx, c.listen, c.tlsCert, c.tlsKey) })
	}
	if !c.disableRules {
		ctrl, err := rules.NewController(rules.Config{Client: client, Dynamic: dyn, Recorder: eventRecorder(ctx, client, "edgetel-onboard-controller"),
			Logger: log, Model: apis.Model(c.model), KubeEdgeNamespace: c.kubeEdgeNamespace, CloudcoreService: c.cloudcoreService,
			StreamPort: c.streamPort, EdgeNodeSelector: c.edgeSelector, Namespace: c.namespace, Name: c.rulesName, Resync: 10 * time.Minute,
			Registry: reg, Policy: c.dnat.policy})
		if err != nil {
			return err
		}
		g.Go(func() error {
			if !c.leaderElect {
				return ctrl.Run(ctx)
			}
			var runErr error
			err := onboard.RunAsLeader(ctx, onboard.LeaderConfig{Client: client, Namespace: c.namespace, Name: c.leaseName, Identity: c.identity},
				func(ctx context.Context) { runErr = ctrl.Run(ctx) })
			return errors.Join(err, runErr)
		})
	}
	return g.Wait()
}

func newJoinServer(c controllerConfig, client kubernetes.Interface, log *slog.Logger, reg prometheus.Registerer) (*join.Server, error) {
	var auth join.Authenticators
	if c.tokenFile != "" {
		st, err := join.LoadStaticTokens(c.tokenFile)
		if err != nil {
			return nil, err
		}
		auth = append(auth, st)
	}
	if c.tokenReview {
		auth = append(auth, join.TokenReviewer{Client: client, Audiences: splitList(c.audiences)})
	}
	return join.NewServer(join.Config{Client: client, Auth: auth, Logger: log, KubeEdgeNamespace: c.kubeEdgeNamespace, Registry: reg,
		SettingsConfigMap: c.settingsConfigMap, Defaults: c.settings,
		Allow:     join.Allowed{Users: splitList(c.allowedUsers), Groups: splitList(c.allowedGroups)},
		RateLimit: join.RateLimit{QPS: float32(c.rateQPS), Burst: c.rateBurst},
		Reservations: join.ReservationStore{Client: client, Namespace: c.namespace, Name: c.reservations, TTL: c.reservationTTL,
			Max: c.maxReservations, MaxPerUser: c.maxPerUser}})
}

func runAgent(ctx context.Context, c agentConfig) error {
	log, err := newLogger(c.logLevel)
	if err != nil {
		return err
	}
	ipt, err := agent.Detect(ctx, agent.Runner{}, c.mode)
	if err != nil {
		return err
	}
	log.Info("iptables backend", "mode", ipt.Mode)
	reg := newRegistry()
	cfg := agent.Config{IPTables: ipt, Chain: c.chain, NodeName: c.nodeName, Namespace: c.namespace, Name: c.rulesName,
		Interval: c.interval, Logger: log, Registry: reg}
	if c.uninstall {
		a, err := agent.New(cfg)
		if err != nil {
			return err
		}
		return a.Uninstall(ctx)
	}
	client, dyn, err := clients(c.kubeconfig)
	if err != nil {
		return err
	}
	base := c.dnat.policy
	if c.hostAddresses {
		own, err := agent.HostAddresses()
		if err != nil {
			return err
		}
		base.Forbid("an address of this host (the API server's)", own...)
	}
	cp := &agent.ClusterPolicy{Client: client, KubeEdgeNamespace: c.kubeEdgeNamespace, CloudcoreService: c.cloudcoreService,
		StreamPort: c.streamPort, EdgeNodeSelector: c.edgeSelector, Base: base}
	if err := cp.Start(ctx); err != nil {
		return err
	}
	cfg.Dynamic, cfg.Recorder, cfg.Policy = dyn, eventRecorder(ctx, client, "edgetel-onboard-agent"), cp.Policy
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(ctx, c.metricsListen, reg) })
	g.Go(func() error { return a.Run(ctx) })
	return g.Wait()
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
