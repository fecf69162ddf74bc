//go:build tools

// Package kube pins the Kubernetes control-plane programs the local stack runs.
// It is never compiled; `go build` builds the listed commands from this module's
// dependency graph, where every staging module resolves to its published version.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
