// Package client is a Go client for roomcast's HTTP API, generated from
// openapi.yaml by oapi-codegen. Do not edit client.gen.go: change
// openapi.yaml and run `go generate ./api/client/`; CI (.ci/lint) fails when
// the committed output differs from a fresh generation.
//
// The generated Client returns the raw *http.Response of StreamRoom without
// reading it, so a caller can read the event stream line by line; Follow
// (follow.go, written by hand) reads it for the caller, reconnecting and
// resuming on its own.
package client

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml ../../openapi.yaml
