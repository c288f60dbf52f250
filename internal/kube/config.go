// Package kube is edgetel's one model of the Kubernetes side of an edge fleet: how to reach the
// API server (APIConfig, the keys of the Collector contrib's k8sconfig), what an edge node is
// (Node), how node labels become attributes (LabelMapping), and the process-wide shared Node
// informer (Registry) that the kubeedge receiver and the edgenode processor both read.
package kube

import (
	"errors"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Authentication types, the values of auth_type. They are the contrib k8sconfig's names
// (internal/k8sconfig in opentelemetry-collector-contrib), so a config written for contrib's
// Kubernetes components reads the same here.
const (
	// AuthServiceAccount is the in-cluster service account (rest.InClusterConfig).
	AuthServiceAccount = "serviceAccount"
	// AuthKubeConfig reads a kubeconfig file.
	AuthKubeConfig = "kubeConfig"
)

// APIConfig says how to reach the Kubernetes API server. Components embed it with
// `mapstructure:",squash"` so its keys sit beside their own.
type APIConfig struct {
	// AuthType is serviceAccount or kubeConfig.
	AuthType string `mapstructure:"auth_type"`
	// KubeConfig is the kubeconfig file for kubeConfig; empty means $KUBECONFIG or ~/.kube/config.
	KubeConfig string `mapstructure:"kubeconfig"`
	// Context is the kubeconfig context for kubeConfig; empty means the current one.
	Context string `mapstructure:"context"`
}

// DefaultAPIConfig is the in-cluster service account: least to configure, least privilege.
func DefaultAPIConfig() APIConfig {
	return APIConfig{AuthType: AuthServiceAccount}
}

// Validate names the first key that is wrong, relative to where the config is embedded.
func (a APIConfig) Validate() error {
	switch a.AuthType {
	case AuthServiceAccount:
		if a.KubeConfig != "" {
			return fmt.Errorf("kubeconfig: only allowed with auth_type %s", AuthKubeConfig)
		}
		if a.Context != "" {
			return fmt.Errorf("context: only allowed with auth_type %s", AuthKubeConfig)
		}
		return nil
	case AuthKubeConfig:
		return nil
	}
	return fmt.Errorf("auth_type: %q is not %s or %s", a.AuthType, AuthServiceAccount, AuthKubeConfig)
}

// RestConfig loads the client configuration a describes.
func RestConfig(a APIConfig) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	switch a.AuthType {
	case AuthServiceAccount:
		rc, err = rest.InClusterConfig()
	case AuthKubeConfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = a.KubeConfig
		overrides := &clientcmd.ConfigOverrides{CurrentContext: a.Context}
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	default:
		err = errors.New("not supported")
	}
	if err != nil {
		return nil, fmt.Errorf("auth_type %s: %w", a.AuthType, err)
	}
	return rc, nil
}

// NewClient builds a clientset from a.
func NewClient(a APIConfig) (kubernetes.Interface, error) {
	rc, err := RestConfig(a)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}
