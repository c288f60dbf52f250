// Package testcluster runs a real Kubernetes control plane for tests: etcd and kube-apiserver on
// loopback ports, RBAC authorization, ServiceAccount token signing (TokenRequest and TokenReview
// served) and a kubelet client PKI, so the node proxy reaches simulated kubelets over TLS. A test
// package starts one control plane (Shared, from TestMain) and hands each component a rest.Config
// or kubeconfig of its own identity.
package testcluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/edgetel/edgetel/internal/testing/tlsutil"
)

// Environment variables naming the binaries (the Makefile's TEST_ENV sets them).
const (
	EnvKubeAPIServer = "EDGETEL_KUBE_APISERVER"
	EnvEtcd          = "EDGETEL_ETCD"
)

// Issuer is the ServiceAccount token issuer, the in-cluster default.
const Issuer = "https://kubernetes.default.svc.cluster.local"

// Binaries are the control plane's programs.
type Binaries struct {
	KubeAPIServer string
	Etcd          string
}

// BinariesFromEnv reads EDGETEL_KUBE_APISERVER and EDGETEL_ETCD. The error says why the control
// plane cannot run: a variable unset (plain `go test`) or a file missing.
func BinariesFromEnv() (Binaries, error) {
	b := Binaries{KubeAPIServer: os.Getenv(EnvKubeAPIServer), Etcd: os.Getenv(EnvEtcd)}
	for env, path := range map[string]string{EnvKubeAPIServer: b.KubeAPIServer, EnvEtcd: b.Etcd} {
		if path == "" {
			return b, fmt.Errorf("%s is not set: run through `make test`, which builds kube-apiserver into ./bin and finds etcd (`make tools`)", env)
		}
		if _, err := os.Stat(path); err != nil {
			return b, fmt.Errorf("%s=%s: %w", env, path, err)
		}
	}
	return b, nil
}

// Cluster is a running control plane.
type Cluster struct {
	// Host is the API server's URL.
	Host string
	// CAFile verifies the API server's serving certificate.
	CAFile string
	// Admin is a system:masters identity, for setting up what the test needs.
	Admin *rest.Config
	// NodeIP is a global unicast address of this machine: the API server refuses to proxy to
	// loopback and link-local node addresses (IsGlobalUnicast in the node strategy's
	// isProxyableHostname, k8s.io/kubernetes pkg/registry/core/node), so simulated kubelets
	// listen here.
	NodeIP string
	// KubeletTLS is the kubelet PKI: the API server verifies kubelet serving certificates against
	// its CA (whose server certificate is valid for NodeIP) and presents its client certificate.
	// edgesim serves with it when given it as its TLS directory.
	KubeletTLS tlsutil.Files

	nodeIPErr error // why NodeIP is empty
	dir       string
	procs     []*proc
}

// proc is a control plane process; done closes when it has exited, with its state in state.
type proc struct {
	name  string
	cmd   *exec.Cmd
	done  chan struct{}
	state string
}

// Start runs etcd and kube-apiserver with their state in dir and waits until the API server is
// ready. Stop ends them; Start stops what it started when it fails.
func Start(ctx context.Context, bins Binaries, dir string) (_ *Cluster, err error) {
	nodeIP, ipErr := globalIPv4()
	c := &Cluster{dir: dir, NodeIP: nodeIP, nodeIPErr: ipErr}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	etcdURL, err := c.startEtcd(bins.Etcd)
	if err != nil {
		return nil, err
	}
	if err := c.startAPIServer(ctx, bins.KubeAPIServer, etcdURL); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) startEtcd(bin string) (string, error) {
	client, peer, err := freePort(), freePort(), error(nil)
	if client == 0 || peer == 0 {
		return "", errors.New("no free loopback port for etcd")
	}
	url := "http://127.0.0.1:" + strconv.Itoa(client)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
	err = c.run(bin, "etcd",
		"--name", "t", "--data-dir", filepath.Join(c.dir, "etcd"),
		"--listen-client-urls", url, "--advertise-client-urls", url,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "t="+peerURL, "--log-level", "warn")
	return url, err
}

func (c *Cluster) startAPIServer(ctx context.Context, bin, etcdURL string) error {
	serving, err := tlsutil.Ensure(filepath.Join(c.dir, "serving"), tlsutil.Options{CommonName: "testcluster-apiserver-ca"})
	if err != nil {
		return err
	}
	c.CAFile = serving.CAFile
	hosts := []string{"127.0.0.1", "localhost"}
	if c.NodeIP != "" {
		hosts = append(hosts, c.NodeIP)
	}
	c.KubeletTLS, err = tlsutil.Ensure(filepath.Join(c.dir, "kubelet"), tlsutil.Options{CommonName: "testcluster-kubelet-ca", Hosts: hosts})
	if err != nil {
		return err
	}
	saKey, saPub, err := writeSigningKey(c.dir)
	if err != nil {
		return err
	}
	token := randomToken()
	tokens := filepath.Join(c.dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",admin,admin-uid,system:masters\n"), 0o600); err != nil {
		return err
	}
	port := freePort()
	if port == 0 {
		return errors.New("no free loopback port for kube-apiserver")
	}
	if err := c.run(bin, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		"--tls-cert-file="+serving.ServerCertFile, "--tls-private-key-file="+serving.ServerKeyFile,
		"--cert-dir="+filepath.Join(c.dir, "certs"),
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer="+Issuer,
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none",
		"--kubelet-certificate-authority="+c.KubeletTLS.CAFile,
		"--kubelet-client-certificate="+c.KubeletTLS.ClientCertFile, "--kubelet-client-key="+c.KubeletTLS.ClientKeyFile,
		"--kubelet-preferred-address-types=InternalIP",
		"--profiling=false", "--v=0",
	); err != nil {
		return err
	}
	c.Host = "https://127.0.0.1:" + strconv.Itoa(port)
	c.Admin = &rest.Config{Host: c.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile},
		QPS: 500, Burst: 1000}
	return c.waitReady(ctx)
}

// waitReady polls /readyz and then waits for the default namespace, which the API server's own
// controllers create after it reports ready.
func (c *Cluster) waitReady(ctx context.Context) error {
	client, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last error
	for {
		if err := c.exited(); err != nil {
			return err
		}
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil {
			_, err = client.CoreV1().ServiceAccounts("default").List(ctx, metav1.ListOptions{})
			if err == nil {
				_, err = client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
			}
			if err == nil {
				return nil
			}
		} else {
			err = fmt.Errorf("%w: %s", err, body)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready: %w (last: %v); logs in %s", ctx.Err(), last, c.dir)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// exited reports a control plane process that has already ended.
func (c *Cluster) exited() error {
	for _, p := range c.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s; see %s", p.name, p.state, filepath.Join(c.dir, p.name+".log"))
		default:
		}
	}
	return nil
}

// run starts a process in its own process group, killed if the test process dies, with its
// output in dir/<name>.log.
func (c *Cluster) run(bin, name string, args ...string) error {
	log, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	c.procs = append(c.procs, p)
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState.String()
		log.Close()
		close(p.done)
	}()
	return nil
}

// Stop ends the API server, then etcd: SIGTERM to each process group, SIGKILL after 10 seconds.
// Nothing is left running when it returns. Safe to call twice.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		stopGroup(c.procs[i])
	}
	c.procs = nil
}

func stopGroup(p *proc) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		// The group is gone when signal 0 finds no process in it.
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	for syscall.Kill(-pgid, 0) == nil {
		time.Sleep(20 * time.Millisecond)
	}
}

// Client is a clientset for cfg.
func Client(cfg *rest.Config) (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(cfg)
}

// ServiceAccountConfig is a rest.Config that authenticates as ServiceAccount namespace/name with a
// token from the TokenRequest API (valid one hour, for the given audiences; none: the API
// server's). The ServiceAccount must exist.
func (c *Cluster) ServiceAccountConfig(ctx context.Context, namespace, name string, audiences ...string) (*rest.Config, error) {
	token, err := c.ServiceAccountToken(ctx, namespace, name, audiences...)
	if err != nil {
		return nil, err
	}
	return &rest.Config{Host: c.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile},
		QPS: 200, Burst: 400}, nil
}

// ServiceAccountToken asks the TokenRequest API for a token of ServiceAccount namespace/name.
func (c *Cluster) ServiceAccountToken(ctx context.Context, namespace, name string, audiences ...string) (string, error) {
	client, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		return "", err
	}
	expiry := int64(3600)
	tr, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for serviceaccount %s/%s: %w", namespace, name, err)
	}
	return tr.Status.Token, nil
}

// WriteKubeconfig writes cfg (host, CA file, bearer token) as a kubeconfig file at path.
func WriteKubeconfig(cfg *rest.Config, path string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthority: cfg.CAFile}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	return clientcmd.WriteToFile(*kc, path)
}

// EnsureNamespace creates namespace name and its default ServiceAccount (no controller manager
// runs here to create it) unless they exist.
func (c *Cluster) EnsureNamespace(ctx context.Context, name string) error {
	client, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	_, err = client.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("default serviceaccount of %s: %w", name, err)
	}
	return nil
}

func writeSigningKey(dir string) (keyFile, pubFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	keyFile, pubFile = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return keyFile, pubFile, os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freePort returns a loopback port that was free a moment ago (0 when none).
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// globalIPv4 is the first global unicast IPv4 address of an interface that is up.
func globalIPv4() (string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String(), nil
			}
		}
	}
	return "", errors.New("no global unicast IPv4 address on any interface: the API server only proxies to such node addresses")
}
