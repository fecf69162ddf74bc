//go:build tools

// Package helm pins the Helm release that kustomize's helmCharts generator runs (--helm-command).
package helm

import _ "helm.sh/helm/v4/cmd/helm"
