package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// A Client reads the service's answers as the types the service encodes.
func ExampleClient() {
	ctx := context.Background()
	h, err := host.New()
	if err != nil {
		panic(err)
	}
	if err := h.Start(ctx); err != nil {
		panic(err)
	}
	defer h.Stop(ctx)
	mon := resilience.NewMonitor()
	ok := func(context.Context) resilience.CheckResult { return resilience.CheckResult{OK: true} }
	if err := mon.Register("disk", ok, time.Minute); err != nil {
		panic(err)
	}
	mon.CheckNow(ctx)
	a, err := api.New(api.Config{Token: "secret"}, api.Deps{Host: h, Monitor: mon})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()

	c, err := api.NewClient(srv.URL, "secret", nil)
	if err != nil {
		panic(err)
	}
	health, err := c.Health(ctx) // an api.HealthView
	fmt.Println(health.Status, health.Components[0].Name, health.Components[0].Status, err)
	_, err = c.Run(ctx, "r1") // a workflow.RunInfo; this service has no engine
	fmt.Println(err)
	// Output:
	// healthy disk healthy <nil>
	// 503 unavailable: the workflow engine is not running
}
