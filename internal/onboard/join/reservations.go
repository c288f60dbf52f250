package join

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// ReservationStore remembers which names and IPs are "joining": a command was issued and the
// Node has not appeared yet. It lives in a ConfigMap so every replica of the service sees it;
// the API server's resourceVersion check serialises concurrent writers.
type ReservationStore struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	// TTL is how long a reservation holds without the Node appearing.
	TTL time.Duration
	Now func() time.Time
}

// ReservedError is a name or IP already held by another joining node.
type ReservedError struct{ msg string }

func (e *ReservedError) Error() string { return e.msg }

// Reserve holds name and ip. Asking again for the same pair renews it (KubeSphere's console
// calls the API once to validate the form and again to show the command).
func (r ReservationStore) Reserve(ctx context.Context, name, ip string, nodes []corev1.Node) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	existing := map[string]bool{}
	for _, n := range nodes {
		existing[n.Name] = true
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := r.Client.CoreV1().ConfigMaps(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		create := apierrors.IsNotFound(err)
		if err != nil && !create {
			return fmt.Errorf("reading join reservations %s/%s: %w", r.Namespace, r.Name, err)
		}
		if create {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "edgetel-onboard"}}}
		}
		data := map[string]string{}
		for n, v := range cm.Data {
			rip, until, ok := parseReservation(v)
			if !ok || now().After(until) || existing[n] {
				continue // expired, unreadable, or the node has joined
			}
			if n == name && rip != ip {
				return &ReservedError{fmt.Sprintf("Node name %s is already joining with IP %s", name, rip)}
			}
			if n != name && rip == ip {
				return &ReservedError{fmt.Sprintf("Node IP %s is already reserved by joining node %s", ip, n)}
			}
			data[n] = v
		}
		data[name] = ip + " " + now().Add(r.TTL).UTC().Format(time.RFC3339)
		cm.Data = data
		if create {
			_, err = r.Client.CoreV1().ConfigMaps(r.Namespace).Create(ctx, cm, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("configmaps"), r.Name, err)
			}
		} else {
			_, err = r.Client.CoreV1().ConfigMaps(r.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
		}
		if err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("writing join reservations %s/%s: %w", r.Namespace, r.Name, err)
		}
		return err
	})
}

func parseReservation(v string) (string, time.Time, bool) {
	ip, ts, ok := strings.Cut(v, " ")
	if !ok {
		return "", time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, ts)
	return ip, t, err == nil
}
