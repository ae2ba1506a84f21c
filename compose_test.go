package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeFile checks compose.yaml's essentials (no Docker engine runs
// here): roomcast built from the Dockerfile on a Redis with AOF, both
// with health checks and restart: unless-stopped, open mode by default,
// and broker/README.md's docker compose section printing this very file.
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type service struct {
		Image       string            `yaml:"image"`
		Build       string            `yaml:"build"`
		Command     []string          `yaml:"command"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		Environment map[string]string `yaml:"environment"`
		Restart     string            `yaml:"restart"`
		Healthcheck struct {
			Test     []string `yaml:"test"`
			Interval string   `yaml:"interval"`
			Timeout  string   `yaml:"timeout"`
			Retries  int      `yaml:"retries"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	}
	var compose struct {
		Services map[string]service `yaml:"services"`
		Volumes  map[string]any     `yaml:"volumes"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	rc, redis := compose.Services["roomcast"], compose.Services["redis"]
	if rc.Build != "." || !slices.Contains(rc.Ports, "8080:8080") {
		t.Errorf("roomcast: build %q ports %q, want the Dockerfile and 8080:8080", rc.Build, rc.Ports)
	}
	if rc.Environment["REDIS_URL"] != "redis://redis:6379" {
		t.Errorf("roomcast REDIS_URL = %q", rc.Environment["REDIS_URL"])
	}
	for name := range rc.Environment {
		if strings.HasPrefix(name, "JWT_") {
			t.Errorf("roomcast sets %s: open mode by default, JWT lines commented", name)
		}
	}
	if !strings.Contains(string(raw), "# JWT_SECRET:") {
		t.Errorf("no commented JWT_SECRET line")
	}
	if rc.DependsOn["redis"].Condition != "service_healthy" {
		t.Errorf("roomcast depends_on redis = %+v", rc.DependsOn)
	}
	if !strings.HasPrefix(redis.Image, "redis:") || !containsRun(redis.Command, "--appendonly", "yes") {
		t.Errorf("redis: image %q command %q, want Redis with AOF on", redis.Image, redis.Command)
	}
	if _, ok := compose.Volumes["redis-data"]; !ok {
		t.Errorf("no redis-data volume")
	}
	for name, s := range compose.Services {
		if s.Restart != "unless-stopped" || len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD" {
			t.Errorf("%s: restart %q health check %q", name, s.Restart, s.Healthcheck.Test)
		}
	}

	// The health check is a command the distroless image has: roomcast itself.
	probe := rc.Healthcheck.Test[1:]
	if probe[0] != "/roomcast" || len(probe) != 3 || probe[1] != "-probe" {
		t.Fatalf("roomcast health check %q, want /roomcast -probe URL", probe)
	}
	in := startRun(t)
	if err := run(t.Context(), []string{"-probe", in.url + "/readyz"}, nil, nil, nil); err != nil {
		t.Fatalf("-probe on a ready roomcast: %v", err)
	}
	if err := run(t.Context(), []string{"-probe", in.url + "/nowhere"}, nil, nil, nil); err == nil {
		t.Fatalf("-probe of a 404 succeeded")
	}
	if err := run(t.Context(), []string{"-probe", "http://" + closedPort(t) + "/readyz"}, nil, nil, nil); err == nil {
		t.Fatalf("-probe of a closed port succeeded")
	}

	deploy, err := os.ReadFile("broker/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(deploy), "```yaml\n"+string(raw)+"```") {
		t.Errorf("broker/README.md does not print compose.yaml as it is")
	}
}

// containsRun reports whether args holds want as consecutive items.
func containsRun(args []string, want ...string) bool {
	for i := range args {
		if i+len(want) <= len(args) && slices.Equal(args[i:i+len(want)], want) {
			return true
		}
	}
	return false
}
