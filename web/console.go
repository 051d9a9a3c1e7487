package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"

	"github.com/labstack/echo/v4"
)

// The operator console: static files built into the binary, no CDN, no build step,
// so it works on an offline LAN. The page is served at / and its assets under
// /static/; the strict CSP set by securityHeaders applies to both, which is why the
// page has no inline script or style.
//
//go:embed static
var staticFiles embed.FS

// consoleAsset is one embedded file, read once, with an ETag so browsers revalidate
// cheaply (the files have no hashed names, so they must not be cached blindly).
type consoleAsset struct {
	name        string
	body        []byte
	etag        string
	contentType string
}

// consoleAssets reads every embedded file; a broken embed is a build bug, so it panics.
func consoleAssets() map[string]*consoleAsset {
	assets := map[string]*consoleAsset{}
	err := fs.WalkDir(staticFiles, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = http.DetectContentType(body)
		}
		rel := p[len("static/"):]
		assets[rel] = &consoleAsset{name: rel, body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: ct}
		return nil
	})
	if err != nil {
		panic(fmt.Errorf("reading the embedded console files: %w", err))
	}
	if assets["index.html"] == nil {
		panic("the embedded console has no index.html")
	}
	return assets
}

func (a *App) mountConsole() {
	assets := consoleAssets()
	serve := func(c echo.Context, asset *consoleAsset) error {
		h := c.Response().Header()
		h.Set("Content-Type", asset.contentType)
		h.Set("ETag", asset.etag)
		// Revalidate every time: a new binary must never run with an old script.
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(c.Response(), c.Request(), asset.name, time.Time{}, bytes.NewReader(asset.body))
		return nil
	}
	index := func(c echo.Context) error { return serve(c, assets["index.html"]) }
	static := func(c echo.Context) error {
		asset, ok := assets[c.Param("*")]
		if !ok || asset.name == "index.html" {
			return echo.NewHTTPError(http.StatusNotFound, "no such console file")
		}
		return serve(c, asset)
	}
	a.e.GET("/", index)
	a.e.HEAD("/", index)
	a.e.GET("/static/*", static)
	a.e.HEAD("/static/*", static)
}
