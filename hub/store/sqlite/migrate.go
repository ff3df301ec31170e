package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

// migrate brings a database written by an older version up to date:
//   - devices kept tags, desired and reported in columns of their own;
//     they now live in the query document (devices.twin) only, so the
//     document is filled in from them and the columns are dropped;
//   - device_jobs.qdoc is added if missing and filled in where it lacks;
//   - jobs.started is added if missing (NULL: no method device started).
func (s *Store) migrate(ctx context.Context) error {
	oldDevices, err := s.hasColumn(ctx, "devices", "tags")
	if err != nil {
		return err
	}
	if oldDevices {
		if err := s.addColumn(ctx, "devices", "twin"); err != nil {
			return err
		}
		if err := s.backfillDevices(ctx); err != nil {
			return fmt.Errorf("backfill devices.twin: %w", err)
		}
		for _, c := range []string{"tags", "desired", "reported"} {
			// Column names are constants of this file.
			if _, err := s.db.ExecContext(ctx, `ALTER TABLE devices DROP COLUMN `+c); err != nil {
				return fmt.Errorf("drop devices.%s: %w", c, err)
			}
		}
	}
	if err := s.addColumn(ctx, "device_jobs", "qdoc"); err != nil {
		return err
	}
	if err := s.addColumn(ctx, "jobs", "started"); err != nil {
		return err
	}
	if err := s.backfillDeviceJobs(ctx); err != nil {
		return fmt.Errorf("backfill device_jobs.qdoc: %w", err)
	}
	return nil
}

func (s *Store) hasColumn(ctx context.Context, table, column string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx,
		`SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, table, column).Scan(&n); err != nil {
		return false, fmt.Errorf("inspect %s: %w", table, err)
	}
	return n > 0, nil
}

// addColumn adds a BLOB column unless the table has it.
func (s *Store) addColumn(ctx context.Context, table, column string) error {
	has, err := s.hasColumn(ctx, table, column)
	if err != nil || has {
		return err
	}
	// Table and column names are constants of this file.
	if _, err := s.db.ExecContext(ctx, `ALTER TABLE `+table+` ADD COLUMN `+column+` BLOB`); err != nil {
		return fmt.Errorf("add %s.%s: %w", table, column, err)
	}
	return nil
}

const backfillBatch = 500

// backfillDevices fills in the query document of the devices of the old
// layout from their tags, desired and reported columns.
func (s *Store) backfillDevices(ctx context.Context) error {
	for {
		rows, err := s.db.QueryContext(ctx,
			`SELECT id, identity, tags, desired, reported, version FROM devices WHERE twin IS NULL ORDER BY id LIMIT ?`, backfillBatch)
		if err != nil {
			return err
		}
		var ids, twins []string
		for rows.Next() {
			var id, identity, tags, desired, reported string
			d := &store.Device{}
			err := rows.Scan(&id, &identity, &tags, &desired, &reported, &d.Version)
			for _, p := range []struct {
				src string
				dst any
			}{{identity, &d.Device}, {tags, &d.Tags}, {desired, &d.Desired}, {reported, &d.Reported}} {
				if err == nil {
					err = json.Unmarshal([]byte(p.src), p.dst)
				}
			}
			var r deviceRow
			if err == nil {
				r, err = encodeDevice(d, false, "")
			}
			if err != nil {
				rows.Close()
				return fmt.Errorf("device %q: %w", id, err)
			}
			ids, twins = append(ids, id), append(twins, r.twin)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		if err := s.fill(ctx, `UPDATE devices SET twin = jsonb(?) WHERE id = ?`, twins, ids); err != nil {
			return err
		}
	}
}

func (s *Store) backfillDeviceJobs(ctx context.Context) error {
	for {
		rows, err := s.db.QueryContext(ctx,
			`SELECT rowid, doc FROM device_jobs WHERE qdoc IS NULL LIMIT ?`, backfillBatch)
		if err != nil {
			return err
		}
		var ids []int64
		var docs []string
		for rows.Next() {
			var id int64
			var doc string
			if err := rows.Scan(&id, &doc); err != nil {
				rows.Close()
				return err
			}
			dj := new(hub.DeviceJob)
			if err := json.Unmarshal([]byte(doc), dj); err != nil {
				rows.Close()
				return fmt.Errorf("decode stored device job: %w", err)
			}
			q, err := store.DeviceJobDoc(dj)
			if err != nil {
				rows.Close()
				return err
			}
			ids, docs = append(ids, id), append(docs, q)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		if err := s.fill(ctx, `UPDATE device_jobs SET qdoc = jsonb(?) WHERE rowid = ?`, docs, ids); err != nil {
			return err
		}
	}
}

// fill runs stmt with (vals[i], keys[i]) for every i in one transaction.
func (s *Store) fill(ctx context.Context, stmt string, vals []string, keys any) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i, v := range vals {
		var k any
		switch ks := keys.(type) {
		case []string:
			k = ks[i]
		case []int64:
			k = ks[i]
		}
		if _, err := tx.ExecContext(ctx, stmt, v, k); err != nil {
			return err
		}
	}
	return tx.Commit()
}
