package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

var binaries = []string{"parley-gateway", "parley-router", "parley-store", "parley-presence", "parley-pusher", "parley-api", "parley"}

// The build packages of deploy/local/deps.sh that the image needs: the
// compiler, pkg-config, every -dev package and the protobuf compilers.
// libclang-rt-*-dev is clang's sanitizer and libFuzzer runtime for `make
// fuzz` on the build machine; no binary in the image links it.
func buildPackages(p *problems, depsPath string) []string {
	data, err := os.ReadFile(depsPath)
	if err != nil {
		p.addf("%v", err)
		return nil
	}
	m := regexp.MustCompile(`(?s)\npackages=\((.*?)\)`).FindSubmatch(data)
	if m == nil {
		p.addf("%s: no packages=( ... ) list", depsPath)
		return nil
	}
	var want []string
	for _, w := range strings.Fields(string(m[1])) {
		if strings.HasPrefix(w, "libclang-rt-") {
			continue
		}
		if strings.HasSuffix(w, "-dev") || strings.HasPrefix(w, "protobuf") ||
			w == "build-essential" || w == "pkg-config" {
			want = append(want, w)
		}
	}
	return want
}

func checkDockerfile(p *problems, path, depsPath string) int {
	f, err := os.Open(path)
	if err != nil {
		p.addf("%v", err)
		return 0
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		p.addf("parse: %v", err)
		return 0
	}
	for _, w := range res.Warnings {
		p.addf("line %d: %s", w.Location.Start.Line, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		p.addf("line %d: %s: %s", line, rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		p.addf("instructions: %v", err)
		return 0
	}
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	base := func(s instructions.Stage) string {
		return os.Expand(s.BaseName, func(k string) string { return args[k] })
	}
	if len(stages) < 2 {
		p.addf("a build stage and a runtime stage expected, found %d stages", len(stages))
		return len(stages)
	}
	if b := base(stages[0]); b != "debian:12" && !strings.HasPrefix(b, "debian:12-") && !strings.HasPrefix(b, "debian:bookworm") {
		p.addf("build stage from %q: Debian 12 expected", b)
	}
	checkBuildStage(p, stages[0], buildPackages(p, depsPath))
	checkRuntimeStage(p, stages, base(stages[len(stages)-1]))
	return len(stages)
}

func runLines(s instructions.Stage) string {
	var all []string
	for _, c := range s.Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			all = append(all, strings.Join(r.CmdLine, " "))
		}
	}
	return strings.Join(all, "\n")
}

func checkBuildStage(p *problems, s instructions.Stage, pkgs []string) {
	run := runLines(s)
	words := map[string]bool{}
	for _, w := range strings.Fields(run) {
		words[w] = true
	}
	for _, pkg := range pkgs {
		if !words[pkg] {
			p.addf("build stage does not install %s (deploy/local/deps.sh needs it)", pkg)
		}
	}
	for _, b := range binaries {
		if !regexp.MustCompile(`/bin/` + regexp.QuoteMeta(b) + `(\s|$)`).MatchString(run) {
			p.addf("build stage does not make %s", b)
		}
	}
}

func checkRuntimeStage(p *problems, stages []instructions.Stage, base string) {
	last := stages[len(stages)-1]
	if strings.HasPrefix(base, "debian") || strings.HasPrefix(base, "ubuntu") {
		p.addf("runtime stage from %q: a slim base without a shell expected", base)
	}
	names := map[string]bool{}
	for _, s := range stages[:len(stages)-1] {
		names[strings.ToLower(s.Name)] = true
	}
	user, entry := "", false
	for _, c := range last.Commands {
		switch v := c.(type) {
		case *instructions.RunCommand:
			p.addf("runtime stage runs %q: it has no shell, copy built files instead", strings.Join(v.CmdLine, " "))
		case *instructions.UserCommand:
			user = v.User
		case *instructions.EntrypointCommand:
			entry = !v.PrependShell && len(v.CmdLine) > 0 && strings.HasPrefix(v.CmdLine[0], "/usr/local/bin/parley")
		case *instructions.CopyCommand:
			if v.From != "" && !names[strings.ToLower(v.From)] {
				p.addf("COPY --from=%s names no earlier stage", v.From)
			}
		}
	}
	uid, err := strconv.Atoi(strings.SplitN(user, ":", 2)[0])
	if err != nil || uid == 0 {
		p.addf("runtime stage USER %q: a numeric non-root user expected (runAsNonRoot checks numbers)", user)
	}
	if !entry {
		p.addf("runtime stage ENTRYPOINT: exec form naming a parley binary expected")
	}
}
