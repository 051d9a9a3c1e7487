package storetest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestParseAdminKeepsThePasswordOut(t *testing.T) {
	tests := []struct{ name, url string }{
		{"bad port", "postgres://jarvis:s3cret@127.0.0.1:port/jarvis"},
		{"control character", "postgres://jarvis:s3cret@127.0.0.1:5432/jar\x7fvis"},
		{"bad escape", "postgres://jarvis:s3cret%zz@127.0.0.1:5432/jarvis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseAdmin(tt.url)
			if err == nil {
				t.Fatal("parsed, want an error")
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestIsStale(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	old := now.Add(-staleAfter - time.Minute).Unix()
	tests := []struct {
		name string
		want bool
	}{
		{fmt.Sprintf("t_%d_123_4_0a1b2c3d", old), true},
		{fmt.Sprintf("t_%d_123_4_0a1b2c3d", now.Add(-time.Hour).Unix()), false},
		{fmt.Sprintf("t_%d_123_4", old), false},          // not ours (an older naming)
		{fmt.Sprintf("t_%d_123_4_0A1B2C3D", old), false}, // not ours
		{"jarvis", false},
		{"t_", false},
	}
	for _, tt := range tests {
		if got := isStale(tt.name, now); got != tt.want {
			t.Errorf("isStale(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The sweep drops a database left by a run long ago, and leaves a current
// one and anything not named as a test database.
func TestSweepStale(t *testing.T) {
	admin := os.Getenv(EnvURL)
	if admin == "" {
		t.Skipf("PostgreSQL only; set %s to run it", EnvURL)
	}
	ctx := context.Background()
	current := Target(t) // the first: this process's own sweep is done
	old := fmt.Sprintf("t_%d_1_1_%08x", time.Now().Add(-staleAfter-time.Hour).Unix(), os.Getpid())
	if err := onServer(admin, "CREATE DATABASE "+old); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = onServer(admin, "DROP DATABASE IF EXISTS "+old+" WITH (FORCE)") })

	sweepStale(t, admin, time.Now())

	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for name, want := range map[string]bool{old: false, current[strings.LastIndex(current, "/")+1 : strings.Index(current, "?")]: true} {
		var there bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&there); err != nil {
			t.Fatal(err)
		}
		if there != want {
			t.Errorf("database %s there after the sweep: %v, want %v", name, there, want)
		}
	}
}
