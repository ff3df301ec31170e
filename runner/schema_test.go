package runner_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/iotjobs/iotjobs/runner"
)

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
)

// checkSchema validates a report, as apply writes it, against the
// committed JSON Schema (report.schema.json), and holds it to the one
// truth of every view (internal/reportcheck).
func checkSchema(t *testing.T, rep *runner.Report) {
	t.Helper()
	checkInvariants(t, rep)
	schemaOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		schema, schemaErr = c.Compile("report.schema.json")
	})
	if schemaErr != nil {
		t.Fatalf("compile report.schema.json: %v", schemaErr)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(doc); err != nil {
		t.Errorf("the report does not match report.schema.json: %v", err)
	}
}

// TestSchemaRejects: the schema is strict enough to catch a report that
// drifted from it.
func TestSchemaRejects(t *testing.T) {
	c := jsonschema.NewCompiler()
	s, err := c.Compile("report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	good := `{"reportVersion":1,"plan":{"name":"p","file":"p.yaml","sha256":""},"hub":"embedded","dryRun":false,
	  "status":"succeeded","startedAt":"2026-11-25T10:00:00Z","finishedAt":"2026-11-25T10:00:01Z","steps":[]}`
	for name, doc := range map[string]string{
		"good":                             good,
		"good dry run":                     `{"reportVersion":1,"plan":{"name":"p","file":"p.yaml","sha256":""},"hub":"fleet f.yaml","dryRun":true,"simulation":{"against":"fleet f.yaml","simulated":true,"assumptions":["devices behave as the file says"]},"status":"succeeded","startedAt":"2026-11-25T10:00:00Z","finishedAt":"2026-11-25T10:00:01Z","steps":[]}`,
		"good not simulated":               `{"reportVersion":1,"plan":{"name":"p","file":"p.yaml","sha256":""},"hub":"embedded","dryRun":true,"simulation":{"against":"hub embedded","simulated":false,"assumptions":[]},"status":"planned","startedAt":"2026-11-25T10:00:00Z","finishedAt":"2026-11-25T10:00:01Z","steps":[]}`,
		"simulation against nothing named": `{"reportVersion":1,"plan":{"name":"p","file":"p.yaml","sha256":""},"hub":"h","dryRun":true,"simulation":{"against":"embedded","simulated":true,"assumptions":[]},"status":"succeeded","startedAt":"2026-11-25T10:00:00Z","finishedAt":"2026-11-25T10:00:01Z","steps":[]}`,
		"simulation without assumptions":   `{"reportVersion":1,"plan":{"name":"p","file":"p.yaml","sha256":""},"hub":"h","dryRun":true,"simulation":{"against":"hub h","simulated":true},"status":"succeeded","startedAt":"2026-11-25T10:00:00Z","finishedAt":"2026-11-25T10:00:01Z","steps":[]}`,
		"good policy":                      `{"reportVersion":1,"plan":{"name":"p","file":"p.yaml","sha256":""},"hub":"h","dryRun":false,"status":"stopped","startedAt":"2026-11-25T10:00:00Z","finishedAt":"2026-11-25T10:00:01Z","steps":[],"policy":{"file":"policy.iotjobs.yaml","sha256":"` + strings.Repeat("a", 64) + `","result":"overridden","violations":[{"rule":"r","kind":"methods","level":"soft","step":"s","message":"m","position":"p.yaml:3:4","overridden":true}],"override":{"reason":"CHG-1","by":"ops"}}}`,
		"policy bad level":                 `{"reportVersion":1,"plan":{"name":"p","file":"p.yaml","sha256":""},"hub":"h","dryRun":false,"status":"stopped","startedAt":"2026-11-25T10:00:00Z","finishedAt":"2026-11-25T10:00:01Z","steps":[],"policy":{"file":"f","sha256":"` + strings.Repeat("a", 64) + `","result":"failed","violations":[{"rule":"r","kind":"methods","level":"strict","message":"m","position":"p"}]}}`,
		"policy override without reason":   `{"reportVersion":1,"plan":{"name":"p","file":"p.yaml","sha256":""},"hub":"h","dryRun":false,"status":"stopped","startedAt":"2026-11-25T10:00:00Z","finishedAt":"2026-11-25T10:00:01Z","steps":[],"policy":{"file":"f","sha256":"` + strings.Repeat("a", 64) + `","result":"passed","violations":[],"override":{}}}`,
		"unknown field":                    `{"reportVersion":1,"plan":{"name":"p","file":"p.yaml","sha256":""},"hub":"h","dryRun":false,"status":"succeeded","startedAt":"2026-11-25T10:00:00Z","finishedAt":"2026-11-25T10:00:01Z","steps":[],"extra":1}`,
		"bad status":                       `{"reportVersion":1,"plan":{"name":"p","file":"p.yaml","sha256":""},"hub":"h","dryRun":false,"status":"ok","startedAt":"2026-11-25T10:00:00Z","finishedAt":"2026-11-25T10:00:01Z","steps":[]}`,
		"other version":                    `{"reportVersion":2,"plan":{"name":"p","file":"p.yaml","sha256":""},"hub":"h","dryRun":false,"status":"succeeded","startedAt":"2026-11-25T10:00:00Z","finishedAt":"2026-11-25T10:00:01Z","steps":[]}`,
		"missing devices":                  `{"reportVersion":1,"plan":{"name":"p","file":"p.yaml","sha256":""},"hub":"h","dryRun":false,"status":"failed","startedAt":"2026-11-25T10:00:00Z","finishedAt":"2026-11-25T10:00:01Z","steps":[{"name":"s","type":"scheduleUpdateTwin","jobIds":[],"queryCondition":"*","status":"skipped","deviceJobStatistics":{"deviceCount":0,"failedCount":0,"succeededCount":0,"runningCount":0,"pendingCount":0}}]}`,
	} {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(doc)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		err = s.Validate(v)
		if (err == nil) != strings.HasPrefix(name, "good") {
			t.Errorf("%s: validation error %v", name, err)
		}
	}
}

// TestSchemaIsJSON keeps the schema file itself well-formed for editors
// and other validators.
func TestSchemaIsJSON(t *testing.T) {
	b, err := os.ReadFile("report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatal("report.schema.json is not valid JSON")
	}
}
