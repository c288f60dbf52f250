// Package kubeedgereceiver discovers KubeEdge edge nodes and scrapes their kubelet metrics
// endpoints through cloudcore's stream server, the API server's node proxy, or directly.
package kubeedgereceiver
