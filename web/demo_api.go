package web

// What only `jarvis serve --demo` offers: crashing a guest of the simulated
// cluster, to try crash detection and standing approvals without a real
// failure. Nothing here reaches a real cluster: the routes exist only when
// Options.Demo is set, which cmd/jarvis does for the simulator alone.
//
//	GET  /api/demo                      {"demo": true|false}: whether the console offers the demo's buttons
//	POST /api/demo/guests/:vmid/crash   {"crashed": 101} (only with Options.Demo)

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
)

// DemoCluster is the simulated cluster of `jarvis serve --demo`, for what the
// demo lets an operator do to it that no tool does.
type DemoCluster interface {
	// CrashGuest stops a running guest the way a crash looks from the API,
	// with no task. An unknown guest's error wraps store.ErrNotFound (404);
	// any other error (a guest that is not running) is the caller's (400).
	CrashGuest(vmid int) error
}

// demoInfo answers GET /api/demo: whether this is the demo. It is there with
// or without Options.Demo, so the console asks once without a failed request.
func (a *App) demoInfo(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]bool{"demo": a.opts.Demo != nil})
}

// crashGuest answers POST /api/demo/guests/:vmid/crash and says so on the feed.
func (a *App) crashGuest(c echo.Context) error {
	vmid, err := guestVMID(c)
	if err != nil {
		return err
	}
	if err := a.opts.Demo.CrashGuest(vmid); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return apiError(http.StatusNotFound, fmt.Sprintf("the simulated cluster has no guest %d", vmid), nil)
		}
		return apiError(http.StatusBadRequest, err.Error(), nil)
	}
	ev := &store.Event{Type: store.EventSystem, Severity: store.SeverityInfo, Source: "demo",
		Summary: fmt.Sprintf("demo: %s crashed guest %d in the simulated cluster (no task; as an OOM kill looks)", safety.OperatorID, vmid)}
	if err := a.opts.Store.Publish(c.Request().Context(), ev); err != nil {
		a.opts.Logger.Warn("could not publish the demo crash", "err", err)
	}
	return c.JSON(http.StatusOK, map[string]int{"crashed": vmid})
}

// mountDemo adds the demo's routes to the operator group.
func (a *App) mountDemo(api *echo.Group) {
	api.GET("/demo", a.demoInfo)
	if a.opts.Demo != nil {
		api.POST("/demo/guests/:vmid/crash", a.crashGuest)
	}
}
