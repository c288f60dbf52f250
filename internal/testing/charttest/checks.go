package charttest

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Check finds what strict decoding cannot: fields a workload needs that the API server would
// refuse without (names, images, selectors matching their pods) and references to objects
// (ConfigMaps, Secrets, ServiceAccounts, ClusterRoles) that the chart should have rendered.
func Check(objs []Object) []error {
	rendered := map[string]bool{}
	for _, o := range objs {
		rendered[o.GVK.Kind+"/"+o.Name] = true
	}
	var errs []error
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			errs = append(errs, checkWorkload(rendered, "Deployment/"+v.Name, v.Spec.Selector, &v.Spec.Template, nil)...)
		case *appsv1.StatefulSet:
			errs = append(errs, checkWorkload(rendered, "StatefulSet/"+v.Name, v.Spec.Selector, &v.Spec.Template, v.Spec.VolumeClaimTemplates)...)
			if v.Spec.ServiceName != "" && !rendered["Service/"+v.Spec.ServiceName] {
				errs = append(errs, fmt.Errorf("StatefulSet/%s: serviceName %s is not rendered", v.Name, v.Spec.ServiceName))
			}
		case *appsv1.DaemonSet:
			errs = append(errs, checkWorkload(rendered, "DaemonSet/"+v.Name, v.Spec.Selector, &v.Spec.Template, nil)...)
		case *corev1.Service:
			if len(v.Spec.Ports) == 0 || len(v.Spec.Selector) == 0 {
				errs = append(errs, fmt.Errorf("service %s: needs ports and a selector", v.Name))
			}
		case *rbacv1.ClusterRoleBinding:
			errs = append(errs, checkBinding(rendered, "ClusterRoleBinding/"+v.Name, v.RoleRef, v.Subjects)...)
		case *rbacv1.RoleBinding:
			errs = append(errs, checkBinding(rendered, "RoleBinding/"+v.Name, v.RoleRef, v.Subjects)...)
		}
	}
	return errs
}

func checkWorkload(rendered map[string]bool, id string, sel *metav1.LabelSelector, pod *corev1.PodTemplateSpec, claims []corev1.PersistentVolumeClaim) []error {
	var errs []error
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || sel == nil || selector.Empty() {
		errs = append(errs, fmt.Errorf("%s: missing or invalid selector", id))
	} else if !selector.Matches(labels.Set(pod.Labels)) {
		errs = append(errs, fmt.Errorf("%s: selector %s does not match the pod labels", id, selector))
	}
	if sa := pod.Spec.ServiceAccountName; sa != "" && !rendered["ServiceAccount/"+sa] {
		errs = append(errs, fmt.Errorf("%s: serviceAccountName %s is not rendered", id, sa))
	}
	volumes := map[string]bool{}
	for _, c := range claims {
		volumes[c.Name] = true
	}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = true
		if v.ConfigMap != nil && !rendered["ConfigMap/"+v.ConfigMap.Name] {
			errs = append(errs, fmt.Errorf("%s: volume %s uses ConfigMap %s, which is not rendered", id, v.Name, v.ConfigMap.Name))
		}
	}
	if len(pod.Spec.Containers) == 0 {
		errs = append(errs, fmt.Errorf("%s: no containers", id))
	}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.Name == "" || c.Image == "" {
			errs = append(errs, fmt.Errorf("%s: a container without name or image", id))
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				errs = append(errs, fmt.Errorf("%s: container %s mounts undefined volume %s", id, c.Name, m.Name))
			}
		}
	}
	return errs
}

func checkBinding(rendered map[string]bool, id string, ref rbacv1.RoleRef, subjects []rbacv1.Subject) []error {
	var errs []error
	if !rendered[ref.Kind+"/"+ref.Name] {
		errs = append(errs, fmt.Errorf("%s: roleRef %s/%s is not rendered", id, ref.Kind, ref.Name))
	}
	for _, s := range subjects {
		if s.Kind == "ServiceAccount" && !rendered["ServiceAccount/"+s.Name] {
			errs = append(errs, fmt.Errorf("%s: subject ServiceAccount %s is not rendered", id, s.Name))
		}
	}
	return errs
}
