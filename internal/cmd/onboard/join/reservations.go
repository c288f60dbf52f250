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
	// Max bounds the reservations (a ConfigMap holds at most 1 MiB); MaxPerUser bounds one
	// caller's, so a caller asking for many new names cannot lock the others out.
	// Zero means DefaultMaxReservations / DefaultMaxReservationsPerUser.
	Max        int
	MaxPerUser int
	Now        func() time.Time
}

// Default bounds: 500 entries of at most ~400 bytes each stay far below a ConfigMap's 1 MiB.
const (
	DefaultMaxReservations        = 500
	DefaultMaxReservationsPerUser = 20
)

// ReservedError is a name or IP already held by another joining node.
type ReservedError struct{ msg string }

func (e *ReservedError) Error() string { return e.msg }

// FullError is a reservation refused because a bound is reached; the API answers 429.
type FullError struct{ msg string }

func (e *FullError) Error() string { return e.msg }

// Reserve holds name and ip for user. Asking again for the same pair renews it (KubeSphere's
// console calls the API once to validate the form and again to show the command).
func (r ReservationStore) Reserve(ctx context.Context, name, ip, user string, nodes []corev1.Node) error {
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
		if apierrors.IsNotFound(err) {
			// Created by the chart: the controller may update this ConfigMap by name and
			// create none, so that it cannot write any other.
			return fmt.Errorf("join reservations ConfigMap %s/%s does not exist: the chart creates it (outside the chart: kubectl -n %s create configmap %s)",
				r.Namespace, r.Name, r.Namespace, r.Name)
		}
		if err != nil {
			return fmt.Errorf("reading join reservations %s/%s: %w", r.Namespace, r.Name, err)
		}
		data := map[string]string{}
		mine := 0
		for n, v := range cm.Data {
			rip, until, owner, ok := parseReservation(v)
			if !ok || now().After(until) || existing[n] {
				continue // expired, unreadable, or the node has joined
			}
			if n == name && rip != ip {
				return &ReservedError{fmt.Sprintf("Node name %s is already joining with IP %s", name, rip)}
			}
			if n != name && rip == ip {
				return &ReservedError{fmt.Sprintf("Node IP %s is already reserved by joining node %s", ip, n)}
			}
			if n != name && owner == user {
				mine++
			}
			data[n] = v
		}
		if _, renew := data[name]; !renew {
			if err := r.bounded(len(data), mine, user); err != nil {
				return err
			}
		}
		data[name] = ip + " " + now().Add(r.TTL).UTC().Format(time.RFC3339) + " " + user
		cm.Data = data
		_, err = r.Client.CoreV1().ConfigMaps(r.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
		if err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("writing join reservations %s/%s: %w", r.Namespace, r.Name, err)
		}
		return err
	})
}

func (r ReservationStore) bounded(total, mine int, user string) error {
	maxTotal, maxUser := or(r.Max, DefaultMaxReservations), or(r.MaxPerUser, DefaultMaxReservationsPerUser)
	if total >= maxTotal {
		return &FullError{fmt.Sprintf("too many nodes joining: %d join commands are outstanding (limit %d); retry once nodes have joined or after %s", total, maxTotal, r.TTL)}
	}
	if mine >= maxUser {
		return &FullError{fmt.Sprintf("too many nodes joining for user %s: %d join commands are outstanding (limit %d); retry once nodes have joined or after %s", user, mine, maxUser, r.TTL)}
	}
	return nil
}

// parseReservation reads "<ip> <until> [<user>]"; entries written before users were recorded
// have no user.
func parseReservation(v string) (ip string, until time.Time, user string, ok bool) {
	ip, rest, ok := strings.Cut(v, " ")
	if !ok {
		return "", time.Time{}, "", false
	}
	ts, user, _ := strings.Cut(rest, " ")
	t, err := time.Parse(time.RFC3339, ts)
	return ip, t, user, err == nil
}
