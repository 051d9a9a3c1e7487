package store

import (
	"context"
	"errors"
	"os"
	"testing"
)

// TestOpenRequiringTheAnchor: with Options.RequireAnchor, the Open that
// founds a log goes on (it writes the anchor), a later one goes on while the
// anchor is there, and one after the anchor was removed is refused with
// ErrAnchorMissing, writing nothing: no audit row, no event on the feed, no
// anchor file. Without the option the same Open goes on, as before.
func TestOpenRequiringTheAnchor(t *testing.T) {
	ctx := context.Background()
	target := tempDB(t)
	require := Options{AuditKey: testKey, RequireAnchor: true}

	s, err := openStore(target, require)
	if err != nil {
		t.Fatalf("the Open that founds the log: %v", err)
	}
	seedCalls(t, s, 2)
	mustClose(t, s)
	if _, err := os.Stat(anchorOf(target)); err != nil {
		t.Fatalf("no anchor after founding: %v", err)
	}
	s, err = openStore(target, require)
	if err != nil {
		t.Fatalf("Open with the anchor in place: %v", err)
	}
	lastEvent, err := s.LastEventID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows := auditRowCount(t, s)
	mustClose(t, s)

	if err := os.Remove(anchorOf(target)); err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(target, require); !errors.Is(err, ErrAnchorMissing) {
		t.Fatalf("Open without the anchor: %v, want ErrAnchorMissing", err)
	}
	if _, err := os.Stat(anchorOf(target)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused Open left an anchor file: %v", err)
	}

	// Without the option it opens; nothing was written by the refusal.
	s = openWith(t, target, Options{})
	if got, err := s.LastEventID(ctx); err != nil || got != lastEvent {
		t.Errorf("the newest event is %d (%v) after the refused Open, was %d", got, err, lastEvent)
	}
	if got := auditRowCount(t, s); got != rows {
		t.Errorf("%d audit rows after the refused Open, were %d", got, rows)
	}
	if rep := mustVerify(t, s); rep.OK {
		t.Errorf("AuditVerify without the anchor file = OK, want the missing anchor reported")
	}
}

func auditRowCount(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.db.Model(&auditRecord{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}
