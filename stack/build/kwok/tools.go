//go:build tools

// Package kwok pins the kwok release that stands in for kubelets in the local stack.
package kwok

import _ "sigs.k8s.io/kwok/cmd/kwok"
