package sqlite

import (
	"context"
	"fmt"
)

// schemaVersion is the layout this code reads and writes, kept in the
// file's PRAGMA user_version. A file of a newer version is refused: its
// layout may mean something this code would misread or undo. Files from
// before versioning (0) are brought to version 1 by migrate.
const schemaVersion = 3

// upgrades[v] moves a file from version v to v+1, for v ≥ 1 (version 0
// is the unversioned layouts, which migrate handles).
var upgrades = map[int]string{
	1: auditSchema,       // version 2 adds the audit log
	2: certificateSchema, // version 3 adds the CA certificates
}

// upgrade brings the file to schemaVersion, or refuses a newer one.
func (s *Store) upgrade(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("this hub.db was written by a newer iotjobs (schema %d; this one knows %d): upgrade iotjobs to use it", v, schemaVersion)
	}
	if v == 0 {
		if _, err := s.db.ExecContext(ctx, schema); err != nil {
			return err
		}
		if err := s.migrate(ctx); err != nil {
			return err
		}
		v = 1
	}
	for ; v < schemaVersion; v++ {
		if _, err := s.db.ExecContext(ctx, upgrades[v]); err != nil {
			return fmt.Errorf("upgrade schema %d to %d: %w", v, v+1, err)
		}
	}
	// The version is a constant of this file, not input.
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return fmt.Errorf("record schema version: %w", err)
	}
	return nil
}
