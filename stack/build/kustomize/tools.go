//go:build tools

// Package kustomize pins the kustomize release that renders kustomizations (lib/source/render.ts).
package kustomize

import _ "sigs.k8s.io/kustomize/kustomize/v5"
