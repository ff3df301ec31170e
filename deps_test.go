package main

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/iotjobs/iotjobs"

// banned lists, per package (and its sub-packages where the key ends in
// "/..."), import prefixes its production code must not reach, directly or
// not, with the reason (README "Layout").
var banned = map[string][]struct{ prefix, why string }{
	"hub/...": {
		{module + "/plan", "the hub knows nothing of plans"},
		{module + "/runner", "the hub knows nothing of the runner"},
		{module + "/simulate", "the simulator depends on the hub, not the reverse"},
	},
	"runner": {
		{module + "/hub/engine", "the runner sees hubs only through hub.Client"},
		{module + "/hub/store", "the runner sees hubs only through hub.Client"},
		{module + "/hub/broker", "the runner sees hubs only through hub.Client"},
		{module + "/hub/mqttbus", "the runner sees hubs only through hub.Client"},
		{module + "/hub/rest", "main chooses the hub; the runner gets a hub.Client"},
		{module + "/simulate", "main chooses the hub; the runner gets a hub.Client"},
		{"github.com/eclipse/paho.mqtt.golang", "no MQTT in the runner"},
		{"github.com/mochi-mqtt", "no MQTT in the runner"},
		{"modernc.org/sqlite", "no store in the runner"},
		{"github.com/jackc/pgx", "no store in the runner"},
	},
	"plan/...": {
		{module + "/hub/engine", "plans are data; only hub/query is used, for syntax checks"},
		{module + "/hub/store", "plans are data"},
		{module + "/hub/rest", "plans are data"},
		{module + "/runner", "the runner depends on plans, not the reverse"},
	},
	"plan/diag": {
		{module + "/", "diag is a leaf"},
	},
	"hub/query": {{module + "/", "the query language is a leaf (stdlib only)"}},
	"hub/sas":   {{module + "/", "sas is a leaf (stdlib only)"}},
	"hub/clock": {{module + "/", "clock is a leaf (stdlib only)"}},
	"hub/mqttproto": {
		{module + "/", "the device protocol is a leaf (stdlib only)"},
		{"github.com/eclipse/paho.mqtt.golang", "no MQTT library in the protocol package"},
		{"github.com/mochi-mqtt", "no MQTT library in the protocol package"},
	},
	"hub": {
		{"github.com/eclipse", "the domain package has no I/O libraries"},
		{"github.com/mochi-mqtt", "the domain package has no I/O libraries"},
		{"modernc.org", "the domain package has no I/O libraries"},
	},
	"hub/engine": {
		{module + "/hub/broker", "the engine reaches devices through hub.DeviceBus"},
		{module + "/hub/mqttbus", "the engine reaches devices through hub.DeviceBus"},
		{module + "/hub/rest", "the engine is behind the REST layer, not in front"},
		{module + "/hub/store/sqlite", "the engine gets a store.Store"},
		{"github.com/eclipse/paho.mqtt.golang", "the engine reaches devices through hub.DeviceBus"},
	},
}

// allowed is, per package, every package of this module its production
// code may import directly, and why its place allows them: a package not
// listed, or an import not listed, fails TestAllowedImports. Only main
// assembles a hub (hub/hubd); leaves import nothing of ours.
var allowed = map[string]struct {
	may []string
	why string
}{
	"": {[]string{"hub", "hub/clock", "hub/engine", "hub/hubd", "hub/mqttproto", "hub/query", "hub/rest", "hub/sas", "plan", "plan/diag", "plan/policy", "runner", "simulate"},
		"main wires everything: the CLI chooses the hub and hands the runner a hub.Client"},
	"hub":                         {nil, "the domain: types, interfaces, errors"},
	"hub/clock":                   {nil, "a leaf: the only source of time"},
	"hub/query":                   {nil, "a leaf: the query language"},
	"hub/sas":                     {nil, "a leaf: connection strings and tokens"},
	"hub/mqttproto":               {nil, "a leaf: the device protocol"},
	"hub/store":                   {[]string{"hub", "hub/query"}, "the persistence port speaks the domain and queries"},
	"hub/store/memstore":          {[]string{"hub", "hub/query", "hub/store"}, "a store"},
	"hub/store/sqlite":            {[]string{"hub", "hub/query", "hub/store"}, "a store"},
	"hub/store/postgres":          {[]string{"hub", "hub/query", "hub/store"}, "a store"},
	"hub/store/storetest":         {[]string{"hub", "hub/query", "hub/store"}, "the suite every store passes"},
	"hub/hubtest":                 {[]string{"hub", "hub/sas"}, "the suite every hub.Client passes; its callers bring the hub and connect the devices"},
	"hub/engine":                  {[]string{"hub", "hub/clock", "hub/mqttproto", "hub/query", "hub/sas", "hub/store"}, "the engine gets a store and a device bus; it knows no transport"},
	"hub/broker":                  {[]string{"hub", "hub/mqttproto", "hub/sas"}, "the embedded broker authenticates devices and scopes their topics"},
	"hub/extbroker":               {[]string{"hub", "hub/mqttproto"}, "a client of an external broker"},
	"hub/extbroker/extbrokertest": {[]string{"hub/mqttproto"}, "a device of the external-broker tests"},
	"hub/mqttbus":                 {[]string{"hub", "hub/mqttproto"}, "the device bus over any MQTT transport"},
	"hub/rest":                    {[]string{"hub", "hub/clock", "hub/sas"}, "the REST API serves and calls a hub.Client"},
	"hub/hubd": {[]string{"hub", "hub/broker", "hub/clock", "hub/engine", "hub/extbroker", "hub/mqttbus", "hub/rest", "hub/sas", "hub/store", "hub/store/postgres", "hub/store/sqlite"},
		"hubd assembles a hub: store, broker, bus, engine, REST"},
	"plan":        {[]string{"hub/query", "plan/diag"}, "plans are data; queries are checked for syntax"},
	"plan/diag":   {nil, "a leaf: diagnostics"},
	"plan/policy": {[]string{"plan", "plan/diag"}, "policies are data checked against plans; device facts come from the caller"},
	"runner":      {[]string{"hub", "hub/clock", "hub/query", "plan"}, "the runner sees hubs only through hub.Client"},
	"simulate": {[]string{"hub", "hub/clock", "hub/engine", "hub/mqttproto", "hub/query", "hub/sas", "hub/store", "hub/store/memstore", "plan/diag", "simulate/internal/mqttc"},
		"simulated devices speak the device protocol to any hub, or sit in-process under an engine (the dry-run's hubs)"},
	"simulate/internal/mqttc": {nil, "a leaf: the simulator's MQTT client"},
	"internal/mqtttest":       {nil, "a test broker"},
	"internal/pgtest":         {nil, "a test database"},
	"internal/testcert":       {nil, "a test certificate"},
	"internal/reportcheck":    {[]string{"hub", "runner"}, "checks a runner's report against the hub's records"},
	"internal/transcript":     {nil, "the CLI's transcripts run the built binary, not its packages"},
	"internal/gfm":            {nil, "a leaf: reads Markdown as GitHub does, for tests"},
	"internal/browser":        {nil, "a leaf: drives headless Chromium for tests of HTML pages"},
}

// TestAllowedImports checks every package's direct imports of this
// module against allowed.
func TestAllowedImports(t *testing.T) {
	for _, pkg := range packages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		a, ok := allowed[rel]
		if !ok {
			t.Errorf("package %q is not in deps_test.go's allowed list: add it, with what it may import and why", rel)
			continue
		}
		for _, imp := range imports(t, pkg) {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if !slices.Contains(a.may, dep) {
				name := rel
				if name == "" {
					name = "main"
				}
				t.Errorf("%s imports %s, which its entry in allowed does not list (%s)", name, dep, a.why)
			}
		}
	}
}

// onlyImporters lists third-party packages that a single package of ours
// wraps, so that nothing else depends on them.
var onlyImporters = map[string][]string{
	"github.com/mochi-mqtt/server/v2":     {"hub/broker"},
	"github.com/eclipse/paho.mqtt.golang": {"hub/extbroker", "simulate"},
	"github.com/gorilla/websocket":        {"hub/broker"},
	"modernc.org/sqlite":                  {"hub/store/sqlite"},
	"github.com/chromedp/":                {"internal/browser"},
}

func packages(t *testing.T) []string {
	out, err := exec.Command("go", "list", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.Fields(string(out))
}

func deps(t *testing.T, pkg string) []string {
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func imports(t *testing.T, pkg string) []string {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, pkg).Output()
	if err != nil {
		t.Fatalf("go list -f imports %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func rules(rel string) (out []struct{ prefix, why string }) {
	for key, rs := range banned {
		if key == rel || (strings.HasSuffix(key, "/...") && (rel == strings.TrimSuffix(key, "/...") || strings.HasPrefix(rel, strings.TrimSuffix(key, "...")))) {
			out = append(out, rs...)
		}
	}
	return out
}

func TestDependencyDirection(t *testing.T) {
	for _, pkg := range packages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		if rel == "" {
			continue
		}
		rs := rules(rel)
		if len(rs) == 0 {
			continue
		}
		for _, d := range deps(t, pkg) {
			if d == pkg {
				continue
			}
			for _, r := range rs {
				if strings.HasPrefix(d, r.prefix) {
					t.Errorf("%s depends on %s: %s", rel, d, r.why)
				}
			}
		}
	}
}

func TestWrappedLibraries(t *testing.T) {
	for _, pkg := range packages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		for _, imp := range imports(t, pkg) {
			for lib, allowed := range onlyImporters {
				if !strings.HasPrefix(imp, lib) {
					continue
				}
				ok := false
				for _, a := range allowed {
					ok = ok || a == rel
				}
				if !ok {
					t.Errorf("%s imports %s; only %v may (they wrap it for everyone else)", rel, imp, allowed)
				}
			}
		}
	}
}

// TestPackageDocs requires a doc.go with a package comment in every
// package, so each one says what it is for.
func TestPackageDocs(t *testing.T) {
	for _, pkg := range packages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		if rel == "" {
			continue // main's comment is in main.go
		}
		path := filepath.Join(filepath.FromSlash(rel), "doc.go")
		src, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s has no doc.go", rel)
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if f.Doc == nil || !strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name+" ") {
			t.Errorf("%s: the package comment must start with %q", path, "Package "+f.Name.Name+" ")
		}
	}
}

// TestClockOnly: no code under the engine, the runner or
// the simulator reads the wall clock or sleeps directly; the dry-run's
// virtual time depends on it.
func TestClockOnly(t *testing.T) {
	forbidden := []string{"time.Now(", "time.Sleep(", "time.After(", "time.AfterFunc(", "time.NewTimer(",
		"time.NewTicker(", "time.Tick(", "time.Since(", "time.Until(", "context.WithTimeout(", "context.WithDeadline("}
	for _, dir := range []string{"hub/engine", "runner", "simulate"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range strings.Split(string(src), "\n") {
				for _, bad := range forbidden {
					if strings.Contains(line, bad) && !strings.HasPrefix(strings.TrimSpace(line), "//") {
						t.Errorf("%s:%d: %s — use the injected clock.Clock", f, i+1, bad)
					}
				}
			}
		}
	}
}
