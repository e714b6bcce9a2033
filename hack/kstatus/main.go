// kstatus prints the verdict of Flux's and kpt's status library (sigs.k8s.io/cli-utils
// pkg/kstatus/status) for Kubernetes objects: what `flux` health checks and `kubectl wait
// --for=jsonpath` pipelines built on kstatus will say about them.
//
// Usage: kubectl get mdep NAME -o json | kstatus
// Input: one object or a List (kind: List / items); no input at all (what `kubectl get
// --ignore-not-found -o json` prints for an object that is gone) reads NotFound, as kstatus'
// poller reports an object its Get does not find. Output: one JSON line per object,
// {"name": ..., "status": "InProgress|Current|Failed|Terminating|NotFound|Unknown", "message": ...}.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sjson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		gone := verdict{"", status.NotFoundStatus.String(), "Resource not found"}
		if err := json.NewEncoder(os.Stdout).Encode(gone); err != nil {
			fail("writing: %v", err)
		}
		return
	}
	var obj map[string]interface{}
	// Kubernetes' own decoder: integers as int64, as unstructured objects hold them.
	if err := k8sjson.Unmarshal(raw, &obj); err != nil {
		fail("stdin is not a JSON object: %v", err)
	}
	objects := []map[string]interface{}{obj}
	if items, ok := obj["items"].([]interface{}); ok {
		objects = objects[:0]
		for _, item := range items {
			if m, ok := item.(map[string]interface{}); ok {
				objects = append(objects, m)
			}
		}
	}
	out := json.NewEncoder(os.Stdout)
	for _, o := range objects {
		u := &unstructured.Unstructured{Object: o}
		result, err := status.Compute(u)
		if err != nil {
			fail("%s: %v", u.GetName(), err)
		}
		if err := out.Encode(verdict{u.GetName(), result.Status.String(), result.Message}); err != nil {
			fail("writing: %v", err)
		}
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(2)
}
