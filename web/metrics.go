package web

import "github.com/labstack/echo/v4"

// mountMetrics serves the Prometheus exposition at GET /metrics when
// Options.Metrics is set. Operator tokens only: the numbers name tools, nodes
// and how busy the cluster is, which an agent or a stranger has no business
// reading. Prometheus sends the token with `authorization: credentials_file`.
func (a *App) mountMetrics() {
	if a.opts.Metrics == nil {
		return
	}
	a.e.GET("/metrics", echo.WrapHandler(a.opts.Metrics), a.requireOperator)
}
