package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/edgetel/edgetel/internal/testing/edgesim"
)

// kubeOptions register the fleet as Node objects in an API server (--kubeconfig).
type kubeOptions struct {
	kubeconfig string
	nodeIP     string
	pods       bool
	sync       time.Duration
}

func (k *kubeOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "register the fleet as Node objects in this kubeconfig's cluster; Ready follows each node's tunnel session")
	fs.StringVar(&k.nodeIP, "kube-node-ip", "", "InternalIP every Node publishes, with the --listen port as its kubelet port, so the API server's node proxy reaches edgesim (default: the --listen host; the API server does not proxy to loopback)")
	fs.BoolVar(&k.pods, "kube-pods", false, "also register the pods each node runs (their namespaces must exist)")
	fs.DurationVar(&k.sync, "kube-sync", 5*time.Second, "how often Ready conditions are brought in line with the nodes' sessions")
}

// start registers the fleet and keeps it in sync until ctx ends; the channel closes when it has
// stopped. Without --kubeconfig it does nothing.
func (k *kubeOptions) start(ctx context.Context, sim *edgesim.Sim, log *slog.Logger) (<-chan struct{}, error) {
	done := make(chan struct{})
	if k.kubeconfig == "" {
		close(done)
		return done, nil
	}
	if k.sync <= 0 {
		return nil, errors.New("--kube-sync must be positive")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", k.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	host, portText, err := net.SplitHostPort(sim.Addr())
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(portText)
	ip := k.nodeIP
	if ip == "" {
		ip = host
	}
	if net.ParseIP(ip) == nil {
		return nil, fmt.Errorf("--kube-node-ip %q is not an IP address", ip)
	}
	reg, err := sim.Registrar(edgesim.KubeOptions{Client: client, NodeIP: ip, Port: port, Pods: k.pods})
	if err != nil {
		return nil, err
	}
	if err := reg.Register(ctx); err != nil {
		return nil, fmt.Errorf("registering the fleet: %w", err)
	}
	log.Info("fleet registered as Node objects", "server", cfg.Host, "node_ip", ip, "kubelet_port", port, "pods", k.pods)
	go func() {
		defer close(done)
		if err := reg.Run(ctx, k.sync); err != nil {
			log.Error("kube registration stopped", "err", err)
		}
	}()
	return done, nil
}
