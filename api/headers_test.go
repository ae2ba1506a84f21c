package api

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestSecurityHeadersStayShared checks that the security header values,
// shared by every response, stay as they are when a handler adds to or
// replaces one of them in its own response.
func TestSecurityHeadersStayShared(t *testing.T) {
	e := echo.New()
	New(Options{}).useSecurity(e)
	e.GET("/add", func(c echo.Context) error {
		c.Response().Header().Add("Referrer-Policy", "origin")
		c.Response().Header().Set("X-Frame-Options", "SAMEORIGIN")
		return c.NoContent(http.StatusNoContent)
	})
	e.GET("/plain", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	for range 2 {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/add", nil))
		if got := rec.Header().Values("Referrer-Policy"); !slices.Equal(got, []string{"no-referrer", "origin"}) {
			t.Fatalf("Referrer-Policy after Add = %q", got)
		}
		rec = httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/plain", nil))
		for _, h := range securityHeaders {
			if got := rec.Header().Values(h.name); !slices.Equal(got, h.value) || len(h.value) != 1 {
				t.Fatalf("%s = %q on the next response, want %q", h.name, got, h.value)
			}
		}
	}
}
