//go:build tools

// Package prometheus pins the Prometheus release that the metric-gate tests query.
package prometheus

import _ "github.com/prometheus/prometheus/cmd/prometheus"
