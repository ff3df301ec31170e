package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

var _ store.Certifier = (*Store)(nil)

// certificateSchema holds the hub's CA certificates (store.Certifier), one
// JSON document (hub.Certificate) each: they are few and read whole.
const certificateSchema = `
CREATE TABLE IF NOT EXISTS certificates (
	name TEXT PRIMARY KEY,
	doc  TEXT NOT NULL
);
`

// PutCertificate implements store.Certifier.
func (s *Store) PutCertificate(ctx context.Context, c *hub.Certificate) error {
	doc, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode certificate %q: %w", c.Name, err)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO certificates (name, doc) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET doc = excluded.doc`, c.Name, string(doc))
		return err
	})
}

// GetCertificate implements store.Certifier.
func (s *Store) GetCertificate(ctx context.Context, name string) (*hub.Certificate, error) {
	var doc string
	err := s.db.QueryRowContext(ctx, `SELECT doc FROM certificates WHERE name = ?`, name).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return store.DecodeCertificate(doc)
}

// ListCertificates implements store.Certifier.
func (s *Store) ListCertificates(ctx context.Context) ([]*hub.Certificate, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT doc FROM certificates ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*hub.Certificate{}
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		c, err := store.DecodeCertificate(doc)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteCertificate implements store.Certifier.
func (s *Store) DeleteCertificate(ctx context.Context, name string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM certificates WHERE name = ?`, name)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}
