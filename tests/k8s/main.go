// parley-k8s-check: offline checks of parley's deployment files, run by
// tests/k8s/check.sh (no cluster, no container engine needed).
//
//	parley-k8s-check manifests [-external NAME,...] RENDERED.yaml
//	parley-k8s-check dockerfile Dockerfile deps.sh
//	parley-k8s-check check metrics <METRICS      (promtool's check, see promlint.go)
//
// manifests decodes every object of a `kustomize build` strictly into the
// Kubernetes API types (unknown fields rejected), checks the Strimzi and
// CloudNativePG resources against the shapes parley relies on, and checks
// the rules of deploy/README.md (probes, limits, security context, drain,
// HPA caps, NetworkPolicies, references between objects). dockerfile parses
// the container file with BuildKit's own parser and checks its rules.
// Each problem is printed on its own line; the exit status is 1 if any.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

type problems struct {
	where string
	list  []string
}

func (p *problems) addf(format string, args ...any) {
	p.list = append(p.list, p.where+": "+fmt.Sprintf(format, args...))
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: parley-k8s-check manifests|dockerfile ...")
		os.Exit(2)
	}
	var p problems
	switch os.Args[1] {
	case "check":
		if len(os.Args) != 3 || os.Args[2] != "metrics" {
			fmt.Fprintln(os.Stderr, "usage: parley-k8s-check check metrics <METRICS")
			os.Exit(2)
		}
		os.Exit(promlintMain(os.Stdin))
	case "manifests":
		fs := flag.NewFlagSet("manifests", flag.ExitOnError)
		external := fs.String("external", "", "Secrets made outside the manifests (comma-separated)")
		fs.Parse(os.Args[2:])
		if fs.NArg() != 1 {
			fmt.Fprintln(os.Stderr, "manifests: one rendered file")
			os.Exit(2)
		}
		p.where = fs.Arg(0)
		var ext []string
		if *external != "" {
			ext = strings.Split(*external, ",")
		}
		n := checkManifests(&p, fs.Arg(0), ext)
		report(&p, fmt.Sprintf("%s: %d objects", fs.Arg(0), n))
	case "dockerfile":
		if len(os.Args) != 4 {
			fmt.Fprintln(os.Stderr, "dockerfile: Dockerfile deps.sh")
			os.Exit(2)
		}
		p.where = os.Args[2]
		n := checkDockerfile(&p, os.Args[2], os.Args[3])
		report(&p, fmt.Sprintf("%s: %d stages", os.Args[2], n))
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(2)
	}
}

func report(p *problems, ok string) {
	for _, s := range p.list {
		fmt.Println(s)
	}
	if len(p.list) > 0 {
		fmt.Printf("%d problems\n", len(p.list))
		os.Exit(1)
	}
	fmt.Println(ok + ", no problems")
}
