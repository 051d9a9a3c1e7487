package store

import "fmt"

// Schema version 1 is the schema of every Jarvis before versioned
// migrations: what AutoMigrate made of the record structs as they were then,
// and on PostgreSQL the trigger that announces new events. The structs below
// are frozen copies of those records. Never change them: a database from
// before migrations is brought to version 1 by this AutoMigrate, and later
// versions change the schema only by their own steps.

type eventRecordV1 struct {
	ID           uint64 `gorm:"primaryKey;autoIncrement"`
	TimeNS       int64  `gorm:"not null;index"`
	Type         string `gorm:"not null;index"`
	Severity     string `gorm:"not null"`
	Source       string `gorm:"not null"`
	Node         string `gorm:"not null;default:'';index"`
	Summary      string `gorm:"not null"`
	Details      string `gorm:"type:text;not null;default:''"`
	Resolved     bool   `gorm:"not null;default:false"`
	ResolvedAtNS *int64
	ResolvedBy   string `gorm:"not null;default:''"`
}

type auditRecordV1 struct {
	ID         uint64 `gorm:"primaryKey;autoIncrement:false"`
	TimeNS     int64  `gorm:"not null"`
	Kind       string `gorm:"not null"`
	BeginID    uint64 `gorm:"not null;default:0;index"`
	Principal  string `gorm:"not null;default:''"`
	Tool       string `gorm:"not null;default:''"`
	Args       string `gorm:"type:text;not null;default:''"`
	Tier       string `gorm:"not null;default:''"`
	Decision   string `gorm:"not null;default:''"`
	Plan       string `gorm:"type:text;not null;default:''"`
	ApprovalID string `gorm:"not null;default:''"`
	Status     string `gorm:"not null;default:''"`
	Error      string `gorm:"type:text;not null;default:''"`
	UPID       string `gorm:"column:upid;not null;default:''"`
	DurationMS int64  `gorm:"not null;default:0"`
	Result     string `gorm:"type:text;not null;default:''"`
	PrevHash   string `gorm:"not null;default:''"`
	Hash       string `gorm:"not null"`
	MAC        string `gorm:"column:mac;not null"`
}

type auditHeadRecordV1 struct {
	ID     uint64 `gorm:"primaryKey;autoIncrement:false"`
	LastID uint64 `gorm:"not null"`
	Hash   string `gorm:"not null"`
	MAC    string `gorm:"column:mac;not null"`
}

type auditGenesisRecordV1 struct {
	ID           uint64 `gorm:"primaryKey;autoIncrement:false"`
	Installation string `gorm:"not null"`
	CreatedNS    int64  `gorm:"not null"`
	MAC          string `gorm:"column:mac;not null"`
}

type spentNonceRecordV1 struct {
	Nonce     string `gorm:"primaryKey"`
	ExpiresNS int64  `gorm:"not null;index"`
}

type approvalRecordV1 struct {
	ID         string `gorm:"primaryKey"`
	Principal  string `gorm:"not null"`
	Tool       string `gorm:"not null"`
	Args       string `gorm:"type:text;not null;default:''"`
	Plan       string `gorm:"type:text;not null;default:''"`
	Tier       string `gorm:"not null;default:''"`
	Status     string `gorm:"not null;index"`
	CreatedNS  int64  `gorm:"not null;index"`
	ExpiresNS  int64  `gorm:"not null"`
	DecidedNS  *int64
	DecidedBy  string `gorm:"not null;default:''"`
	ConsumedNS *int64
}

type preferenceRecordV1 struct {
	Key       string `gorm:"primaryKey"`
	Value     string `gorm:"type:text;not null"`
	UpdatedNS int64  `gorm:"not null"`
}

type tokenRecordV1 struct {
	ID        string `gorm:"primaryKey"`
	Name      string `gorm:"not null;default:''"`
	MaxTier   string `gorm:"not null;default:''"`
	Toolsets  string `gorm:"not null;default:''"`
	CreatedNS int64  `gorm:"not null;index"`
	ExpiresNS int64  `gorm:"not null;default:0"`
	RevokedNS *int64
	TokenHash string `gorm:"not null;uniqueIndex"`
}

type createdGuestRecordV1 struct {
	VMID      int    `gorm:"column:vmid;primaryKey;autoIncrement:false"`
	Node      string `gorm:"not null"`
	Tool      string `gorm:"not null"`
	Principal string `gorm:"not null"`
	Marker    string `gorm:"not null;default:''"`
	BeginID   uint64 `gorm:"not null"`
	CreatedNS int64  `gorm:"not null"`
}

type ruleRecordV1 struct {
	ID               string `gorm:"primaryKey"`
	Version          int    `gorm:"primaryKey;autoIncrement:false"`
	Principal        string `gorm:"not null;index"`
	Tool             string `gorm:"not null"`
	Args             string `gorm:"type:text;not null"`
	Trigger          string `gorm:"not null;default:''"`
	PerTargetPerHour int    `gorm:"not null"`
	MaxFailures      int    `gorm:"not null"`
	ExpiresNS        int64  `gorm:"not null"`
	Note             string `gorm:"type:text;not null;default:''"`
	CreatedBy        string `gorm:"not null"`
	CreatedNS        int64  `gorm:"not null"`
	RevokedNS        *int64
	RevokedBy        string `gorm:"not null;default:''"`
	Current          bool   `gorm:"not null;index"`
}

type ruleUseRecordV1 struct {
	ID        uint64 `gorm:"primaryKey;autoIncrement"`
	RuleID    string `gorm:"not null;index:idx_rule_uses_rule,priority:1"`
	Version   int    `gorm:"not null"`
	Principal string `gorm:"not null"`
	Target    string `gorm:"not null"`
	Node      string `gorm:"not null;default:''"`
	AuditID   uint64 `gorm:"not null;default:0"`
	StartedNS int64  `gorm:"not null;index:idx_rule_uses_rule,priority:2"`
	EndedNS   *int64
	Outcome   string `gorm:"not null;default:''"`
}

func (eventRecordV1) TableName() string        { return "events" }
func (auditRecordV1) TableName() string        { return "audit_log" }
func (auditHeadRecordV1) TableName() string    { return "audit_head" }
func (auditGenesisRecordV1) TableName() string { return "audit_genesis" }
func (spentNonceRecordV1) TableName() string   { return "spent_nonces" }
func (approvalRecordV1) TableName() string     { return "approvals" }
func (preferenceRecordV1) TableName() string   { return "preferences" }
func (tokenRecordV1) TableName() string        { return "agent_tokens" }
func (createdGuestRecordV1) TableName() string { return "created_guests" }
func (ruleRecordV1) TableName() string         { return "rules" }
func (ruleUseRecordV1) TableName() string      { return "rule_uses" }

// migrateBaseline is version 1. AutoMigrate creates what is missing and
// leaves what is there, so it both creates a new database and brings one from
// before migrations (of any earlier release) to version 1, as every Open did
// before.
func migrateBaseline(m migrator) error {
	if err := m.tx.AutoMigrate(&eventRecordV1{}, &auditRecordV1{}, &auditHeadRecordV1{}, &auditGenesisRecordV1{},
		&spentNonceRecordV1{}, &approvalRecordV1{}, &preferenceRecordV1{}, &tokenRecordV1{}, &createdGuestRecordV1{},
		&ruleRecordV1{}, &ruleUseRecordV1{}); err != nil {
		return err
	}
	if !m.postgres() {
		return nil // SQLite cannot notify: followers poll (events_follow.go)
	}
	return announceEvents(m)
}

// announceEvents adds a trigger that notifies eventsChannel once per
// statement inserting events. The notification is sent at commit (never for
// a rolled-back insert), once per transaction however many statements, and
// costs the inserting transaction no round trip while it holds the events
// lock. A database from before migrations may have it already.
func announceEvents(m migrator) error {
	var n int64
	err := m.tx.Raw("SELECT count(*) FROM pg_trigger WHERE tgname = 'jarvis_events_notify' AND tgrelid = 'events'::regclass").Scan(&n).Error
	if err != nil || n > 0 {
		return err
	}
	err = m.exec(
		`CREATE OR REPLACE FUNCTION jarvis_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_notify('`+eventsChannel+`', '');
			RETURN NULL;
		END $$`,
		`CREATE TRIGGER jarvis_events_notify AFTER INSERT ON events
			FOR EACH STATEMENT EXECUTE FUNCTION jarvis_events_notify()`,
	)
	if err != nil {
		return fmt.Errorf("announce new events: %w", err)
	}
	return nil
}
