package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

func runDoctor(ctx context.Context, stdout io.Writer) error {
	cfg, err := LoadConfig(false)
	if err != nil {
		fmt.Fprintf(stdout, "config: FAIL\n%v\n", err)
		return errors.New("configuration has problems")
	}
	fmt.Fprintln(stdout, "config: ok")
	a, err := buildApp(ctx, false, io.Discard)
	if err != nil {
		fmt.Fprintf(stdout, "startup: FAIL: %v\n", err)
		return err
	}
	defer a.Close()
	failed := false
	check := func(name string, err error) {
		if err != nil {
			failed = true
			fmt.Fprintf(stdout, "%s: FAIL: %v\n", name, err)
			return
		}
		fmt.Fprintf(stdout, "%s: ok\n", name)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	check("database "+cfg.DBPath, a.store.Ping(cctx))
	check("proxmox api", a.pve.Ping(cctx))
	if rep, err := a.store.AuditVerify(cctx); err != nil {
		check("audit log", err)
	} else if !rep.OK {
		at := ""
		if rep.FirstBadID > 0 {
			at = fmt.Sprintf(" at row %d", rep.FirstBadID)
		}
		check("audit log", fmt.Errorf("broken%s: %s (jarvis audit verify says more)", at, rep.Problem))
	} else {
		check("audit log", nil)
	}
	if a.ssh == nil {
		fmt.Fprintln(stdout, "ssh: not configured (node tools unavailable)")
	}
	if failed {
		return errors.New("some checks failed")
	}
	return nil
}
