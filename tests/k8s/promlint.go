package main

import (
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// promlintMain is `promtool check metrics` without the rest of promtool:
// promtool's check is exactly promlint.New(stdin).Lint() from client_golang
// (the version Prometheus v0.316.0 requires), its problems printed one a
// line and exit status 3 when there are any, 1 when the input does not
// parse. Building real promtool takes minutes on a fresh machine (it
// carries every service discovery of Prometheus); tests/k8s/tools.sh uses
// it when it is already built and falls back to this otherwise.
func promlintMain(r io.Reader) int {
	problems, err := promlint.New(r).Lint()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error while linting:", err)
		return 1
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p.Metric, p.Text)
	}
	if len(problems) > 0 {
		return 3
	}
	return 0
}
