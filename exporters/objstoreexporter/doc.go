// Package objstoreexporter implements the objstore exporter: it appends metrics to a local
// Prometheus TSDB, cuts blocks every block_duration and ships them to an object-storage bucket in
// the layout Thanos' store gateway and compactor read (see README.md).
package objstoreexporter
