// Package kubeedgereceiver discovers KubeEdge edge nodes and scrapes their kubelet metrics
// endpoints through cloudcore's stream server, the API server's node proxy, or directly. This
// package holds the configuration, the factory, the fleet its signals share (internal/edgefleet,
// built in fleet.go) and the metrics scrape loops; the logs signal is internal/logs.
package kubeedgereceiver
