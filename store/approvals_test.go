package store

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var approvalTime = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// newPending creates a pending approval created at approvalTime that expires
// after ttl.
func newPending(t *testing.T, s *Store, ttl time.Duration) *Approval {
	t.Helper()
	a := &Approval{Principal: "agent:ci", Tool: "stop_vm", Args: `{"vmid":101}`, Plan: "Stop VM 101", Tier: "RED",
		CreatedAt: approvalTime, ExpiresAt: approvalTime.Add(ttl)}
	if err := s.CreateApproval(context.Background(), a); err != nil {
		t.Fatalf("CreateApproval: %v", err)
	}
	return a
}

func TestApprovalLifecycle(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	a := newPending(t, s, 10*time.Minute)
	if !regexp.MustCompile(`^apr_[0-9a-f]{16}$`).MatchString(a.ID) || a.Status != ApprovalPending {
		t.Fatalf("created approval %+v: want an apr_ id and pending", a)
	}
	got, err := s.GetApproval(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Principal != a.Principal || got.Args != a.Args || got.Plan != a.Plan || got.Tier != "RED" ||
		!got.CreatedAt.Equal(approvalTime) || !got.ExpiresAt.Equal(a.ExpiresAt) || got.DecidedAt != nil || got.ConsumedAt != nil {
		t.Errorf("GetApproval = %+v, want %+v", got, a)
	}

	decided := approvalTime.Add(time.Minute)
	ok, err := s.DecideApproval(ctx, a.ID, true, "operator", decided)
	if err != nil {
		t.Fatal(err)
	}
	if ok.Status != ApprovalApproved || ok.DecidedBy != "operator" || ok.DecidedAt == nil || !ok.DecidedAt.Equal(decided) {
		t.Errorf("DecideApproval = %+v, want approved by operator at %v", ok, decided)
	}
	if _, err := s.DecideApproval(ctx, a.ID, false, "someone", decided); !errors.Is(err, ErrNotPending) {
		t.Errorf("second decision error = %v, want ErrNotPending", err)
	}

	used := approvalTime.Add(2 * time.Minute)
	c, err := s.ConsumeApproval(ctx, a.ID, Binding{a.Principal, a.Tool, a.Args, a.Plan}, used)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != ApprovalConsumed || c.ConsumedAt == nil || !c.ConsumedAt.Equal(used) || c.DecidedBy != "operator" {
		t.Errorf("ConsumeApproval = %+v, want consumed at %v", c, used)
	}
	if _, err := s.ConsumeApproval(ctx, a.ID, Binding{a.Principal, a.Tool, a.Args, a.Plan}, used); !errors.Is(err, ErrAlreadyConsumed) {
		t.Errorf("second consume error = %v, want ErrAlreadyConsumed", err)
	}
	if _, err := s.GetApproval(ctx, "apr_0000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetApproval(unknown) error = %v, want ErrNotFound", err)
	}
}

func TestCreateApprovalValidation(t *testing.T) {
	s, _ := openTemp(t)
	tests := []struct {
		name string
		a    *Approval
		want string
	}{
		{"nil", nil, "nil"},
		{"no principal", &Approval{Tool: "t", ExpiresAt: time.Now().Add(time.Hour)}, "required"},
		{"no tool", &Approval{Principal: "p", ExpiresAt: time.Now().Add(time.Hour)}, "required"},
		{"no expiry", &Approval{Principal: "p", Tool: "t"}, "not after creation"},
		{"expires before creation", &Approval{Principal: "p", Tool: "t", CreatedAt: approvalTime, ExpiresAt: approvalTime.Add(-time.Second)}, "not after creation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.CreateApproval(context.Background(), tt.a)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CreateApproval error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	// CreatedAt defaults to now; ID and Status are always ours.
	a := &Approval{ID: "mine", Status: ApprovalApproved, Principal: "p", Tool: "t", ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.CreateApproval(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if a.ID == "mine" || a.Status != ApprovalPending || a.CreatedAt.IsZero() {
		t.Errorf("CreateApproval kept caller-set fields: %+v", a)
	}
}

func TestDecideApprovalRefusals(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		prepare    func(t *testing.T, s *Store, a *Approval)
		at         time.Time
		is         error
		wantStatus string // stored status afterwards
	}{
		{"unknown id", nil, approvalTime, ErrNotFound, ""},
		{"expired while pending", nil, approvalTime.Add(time.Hour), ErrExpired, ApprovalExpired},
		{"exactly at expiry", nil, approvalTime.Add(10 * time.Minute), ErrExpired, ApprovalExpired},
		{"already denied", func(t *testing.T, s *Store, a *Approval) {
			if _, err := s.DecideApproval(ctx, a.ID, false, "op", approvalTime); err != nil {
				t.Fatal(err)
			}
		}, approvalTime, ErrNotPending, ApprovalDenied},
		{"already expired", func(t *testing.T, s *Store, a *Approval) {
			if _, err := s.ExpireApprovals(ctx, approvalTime.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}, approvalTime, ErrExpired, ApprovalExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTemp(t)
			a := newPending(t, s, 10*time.Minute)
			id := a.ID
			if tt.is == ErrNotFound {
				id = "apr_ffffffffffffffff"
			}
			if tt.prepare != nil {
				tt.prepare(t, s, a)
			}
			got, err := s.DecideApproval(ctx, id, true, "op", tt.at)
			if !errors.Is(err, tt.is) {
				t.Fatalf("DecideApproval error = %v, want %v", err, tt.is)
			}
			if tt.name == "expired while pending" && (got == nil || got.Status != ApprovalExpired) {
				t.Errorf("expired approval returned as %+v, want it with status expired", got)
			}
			if tt.wantStatus != "" {
				if stored, _ := s.GetApproval(ctx, a.ID); stored.Status != tt.wantStatus {
					t.Errorf("stored status = %s, want %s", stored.Status, tt.wantStatus)
				}
			}
		})
	}
}

func TestConsumeApprovalRefusals(t *testing.T) {
	ctx := context.Background()
	const principal, tool, args = "agent:ci", "stop_vm", `{"vmid":101}`
	approve := func(t *testing.T, s *Store, a *Approval) {
		if _, err := s.DecideApproval(ctx, a.ID, true, "op", approvalTime); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name                 string
		prepare              func(t *testing.T, s *Store, a *Approval)
		principal, tool, arg string
		at                   time.Time
		is                   error
		wantInText           string
		wantStatus           string
	}{
		{"unknown id", approve, principal, tool, args, approvalTime, ErrNotFound, "not found", ""},
		{"other principal", approve, "agent:evil", tool, args, approvalTime, ErrMismatch, "principal differ", ApprovalApproved},
		{"other tool", approve, principal, "delete_vm", args, approvalTime, ErrMismatch, "tool differ", ApprovalApproved},
		{"other arguments", approve, principal, tool, `{"vmid":102}`, approvalTime, ErrMismatch, "arguments differ", ApprovalApproved},
		{"still pending", nil, principal, tool, args, approvalTime, ErrNotApproved, "pending", ApprovalPending},
		{"denied", func(t *testing.T, s *Store, a *Approval) {
			if _, err := s.DecideApproval(ctx, a.ID, false, "op", approvalTime); err != nil {
				t.Fatal(err)
			}
		}, principal, tool, args, approvalTime, ErrNotApproved, "denied", ApprovalDenied},
		{"approved but expired", approve, principal, tool, args, approvalTime.Add(time.Hour), ErrExpired, "expired", ApprovalExpired},
		{"expired while pending", func(t *testing.T, s *Store, a *Approval) {
			if _, err := s.ExpireApprovals(ctx, approvalTime.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}, principal, tool, args, approvalTime, ErrExpired, "expired", ApprovalExpired},
		{"consumed", func(t *testing.T, s *Store, a *Approval) {
			approve(t, s, a)
			if _, err := s.ConsumeApproval(ctx, a.ID, Binding{principal, tool, args, a.Plan}, approvalTime); err != nil {
				t.Fatal(err)
			}
		}, principal, tool, args, approvalTime, ErrAlreadyConsumed, "already used", ApprovalConsumed},
		// The plan passed is another one (see below): the arguments now name another target.
		{"plan changed", approve, principal, tool, args, approvalTime, ErrPlanChanged, "plan changed", ApprovalApproved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTemp(t)
			a := newPending(t, s, 10*time.Minute)
			if tt.prepare != nil {
				tt.prepare(t, s, a)
			}
			id := a.ID
			if tt.is == ErrNotFound {
				id = "apr_ffffffffffffffff"
			}
			plan := a.Plan
			if tt.is == ErrPlanChanged {
				plan = "stop_vm: Hard stop of another guest"
			}
			got, err := s.ConsumeApproval(ctx, id, Binding{tt.principal, tt.tool, tt.arg, plan}, tt.at)
			if !errors.Is(err, tt.is) {
				t.Fatalf("ConsumeApproval = %v, %v; want %v", got, err, tt.is)
			}
			// Who the approval was not granted to learns nothing about it; the
			// caller it was granted to gets it back as it stands.
			switch {
			case tt.is == ErrMismatch || tt.is == ErrNotFound:
				if got != nil {
					t.Fatalf("ConsumeApproval returned %+v with %v; want nothing", got, err)
				}
			case got == nil || got.Status != tt.wantStatus:
				t.Fatalf("ConsumeApproval returned %+v with %v; want the approval, status %s", got, err, tt.wantStatus)
			}
			if !strings.Contains(err.Error(), tt.wantInText) {
				t.Errorf("error %q does not mention %q", err, tt.wantInText)
			}
			if tt.wantStatus != "" {
				if stored, _ := s.GetApproval(ctx, a.ID); stored.Status != tt.wantStatus {
					t.Errorf("stored status = %s, want %s", stored.Status, tt.wantStatus)
				}
			}
		})
	}
}

// TestConsumeApprovalOnce races 20 callers, spread over two handles on the
// same file, for one approval.
func TestConsumeApprovalOnce(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	other := openAt(t, path, testKey)
	a := newPending(t, s, 10*time.Minute)
	if _, err := s.DecideApproval(ctx, a.ID, true, "op", approvalTime); err != nil {
		t.Fatal(err)
	}
	const callers = 20
	start := make(chan struct{})
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for i := 0; i < callers; i++ {
		h := s
		if i%2 == 1 {
			h = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := h.ConsumeApproval(ctx, a.ID, Binding{a.Principal, a.Tool, a.Args, a.Plan}, approvalTime.Add(time.Minute))
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrAlreadyConsumed):
			t.Errorf("loser got %v, want ErrAlreadyConsumed", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d callers consumed the approval, want exactly 1", wins)
	}
}

func TestExpireApprovalsAndList(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	mk := func(created time.Time, ttl time.Duration) *Approval {
		a := &Approval{Principal: "p", Tool: "t", CreatedAt: created, ExpiresAt: created.Add(ttl)}
		if err := s.CreateApproval(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	old := mk(approvalTime, 5*time.Minute)                       // expires 10:05
	mid := mk(approvalTime.Add(time.Minute), 5*time.Minute)      // expires 10:06
	fresh := mk(approvalTime.Add(2*time.Minute), time.Hour)      // expires 11:02
	approved := mk(approvalTime.Add(3*time.Minute), time.Minute) // expires 10:04, approved but never used
	if _, err := s.DecideApproval(ctx, approved.ID, true, "op", approvalTime.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}

	got, err := s.ExpireApprovals(ctx, approvalTime.Add(6*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != old.ID || got[1].ID != mid.ID || got[2].ID != approved.ID || got[2].Status != ApprovalExpired {
		t.Fatalf("ExpireApprovals = %+v, want old, mid and the unused approved one, expired", got)
	}
	if again, _ := s.ExpireApprovals(ctx, approvalTime.Add(6*time.Minute)); len(again) != 0 {
		t.Errorf("second ExpireApprovals = %v, want none", again)
	}

	tests := []struct {
		status string
		want   []string
	}{
		{"", []string{approved.ID, fresh.ID, mid.ID, old.ID}},
		{ApprovalExpired, []string{approved.ID, mid.ID, old.ID}},
		{ApprovalPending, []string{fresh.ID}},
		{ApprovalApproved, nil},
		{ApprovalConsumed, nil},
	}
	for _, tt := range tests {
		list, err := s.ListApprovals(ctx, tt.status)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range list {
			ids = append(ids, a.ID)
		}
		if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
			t.Errorf("ListApprovals(%q) = %v, want %v", tt.status, ids, tt.want)
		}
	}
	if _, err := s.ListApprovals(ctx, "maybe"); err == nil {
		t.Error("ListApprovals with an unknown status succeeded")
	}
}

func TestCountApprovals(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	for range 3 {
		newPending(t, s, 10*time.Minute)
	}
	a := newPending(t, s, 10*time.Minute)
	if _, err := s.DecideApproval(ctx, a.ID, false, "operator", approvalTime.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for status, want := range map[string]int64{ApprovalPending: 3, ApprovalDenied: 1, ApprovalApproved: 0} {
		if n, err := s.CountApprovals(ctx, status); err != nil || n != want {
			t.Errorf("CountApprovals(%s) = %d, %v; want %d", status, n, err, want)
		}
	}
	if _, err := s.CountApprovals(ctx, "waiting"); err == nil {
		t.Error("an unknown status was counted")
	}
}
