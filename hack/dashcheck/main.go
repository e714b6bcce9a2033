// dashcheck validates Grafana dashboards with Grafana's own schema code (the foundation SDK:
// strict unmarshalling, every panel's options and field config decoded by its plugin's
// types, then Validate), the way a dashboard provisioned by the sidecar must hold up.
//
// Usage: dashcheck DASHBOARD.json...  (exit 1 naming the first problem of each bad file)
package main

import (
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashcheck DASHBOARD.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	bad := 0
	for _, path := range os.Args[1:] {
		raw, err := os.ReadFile(path)
		if err == nil {
			var d dashboard.Dashboard
			if err = d.UnmarshalJSONStrict(raw); err == nil {
				err = d.Validate()
			}
			// Some generated validators return an empty BuildErrors (a typed nil) for "none".
			if errs, ok := err.(cog.BuildErrors); ok && len(errs) == 0 {
				err = nil
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			bad++
			continue
		}
		fmt.Printf("%s: ok\n", path)
	}
	if bad > 0 {
		os.Exit(1)
	}
}
