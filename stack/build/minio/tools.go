//go:build tools

// Package minio pins the MinIO server the local stack uses as its S3 endpoint.
package minio

import _ "github.com/minio/minio"
