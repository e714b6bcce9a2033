// Command etcd runs etcd 3.6 for the onnxops devcluster; it only delegates to etcdmain.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
