// Command etcd runs the etcd server from its published Go module. The upstream
// server module carries replace directives that `go install` refuses, so the
// local stack builds etcd through this wrapper instead.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
