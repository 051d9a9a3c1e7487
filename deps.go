//go:build tools

package deps

import (
	_ "github.com/caarlos0/env/v11"
	_ "github.com/gliderlabs/ssh"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/labstack/echo/v4"
	_ "github.com/melbahja/goph"
	_ "github.com/modelcontextprotocol/go-sdk/mcp"
	_ "golang.org/x/crypto/ssh"
	_ "golang.org/x/time/rate"
	_ "gorm.io/driver/sqlite"
	_ "gorm.io/gorm"
	_ "mvdan.cc/sh/v3/syntax"
	_ "go.uber.org/goleak"
	_ "github.com/chromedp/chromedp"
)
