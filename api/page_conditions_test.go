package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestPageIgnoresRangesAndOtherConditions checks what openapi.yaml says of
// the page's files: a current If-None-Match is a 304, and every other
// condition, and Range, is ignored, so that the answer is the whole file;
// and the spec promises no status that only ranges or those conditions
// would give.
func TestPageIgnoresRangesAndOtherConditions(t *testing.T) {
	t.Parallel()
	srv := pageServer(t)
	for _, path := range []string{"/", "/assets/style.css"} {
		_, whole := fetchPage(t, srv, path)
		for _, header := range [][]string{
			{"Range", "bytes=0-9"},
			{"Range", "bytes=100000-"}, // unsatisfiable
			{"Range", "bytes=0-9", "If-Range", `"another-version"`},
			{"If-Match", `"another-version"`},
			{"If-Unmodified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"},
			{"If-Modified-Since", "Mon, 01 Jan 2101 00:00:00 GMT"},
		} {
			resp, body := fetchPage(t, srv, path, header...)
			if resp.StatusCode != http.StatusOK || body != whole {
				t.Fatalf("GET %s with %q: %d and %d bytes, want 200 and the whole file (%d bytes)",
					path, header, resp.StatusCode, len(body), len(whole))
			}
		}
	}
	doc, err := openapi3.NewLoader().LoadFromFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []string{"206", "412", "416"} {
		if strings.Contains(doc.Info.Description, "`"+status+"`") {
			t.Errorf("info.description promises %s, which the server never answers", status)
		}
		for _, op := range []*openapi3.Operation{doc.Paths.Find("/").Get, doc.Paths.Find("/assets/{file}").Get} {
			if op.Responses.Value(status) != nil {
				t.Errorf("%s documents %s, which the server never answers", op.OperationID, status)
			}
		}
	}
}
