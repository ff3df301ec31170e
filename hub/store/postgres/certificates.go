package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

var _ store.Certifier = (*Store)(nil)

// PutCertificate implements store.Certifier.
func (s *Store) PutCertificate(ctx context.Context, c *hub.Certificate) error {
	if err := checkKey("certificate name", c.Name); err != nil {
		return err
	}
	doc, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode certificate %q: %w", c.Name, err)
	}
	return s.write(ctx, func(q execer) error {
		_, err := q.Exec(ctx, `INSERT INTO certificates (name, doc) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET doc = excluded.doc`, c.Name, string(doc))
		return ctxErr(ctx, err)
	})
}

// GetCertificate implements store.Certifier.
func (s *Store) GetCertificate(ctx context.Context, name string) (*hub.Certificate, error) {
	if !storable(name) {
		return nil, store.ErrNotFound
	}
	var doc string
	err := s.pool.QueryRow(ctx, `SELECT doc FROM certificates WHERE name = $1`, name).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	return store.DecodeCertificate(doc)
}

// ListCertificates implements store.Certifier.
func (s *Store) ListCertificates(ctx context.Context) ([]*hub.Certificate, error) {
	rows, err := s.pool.Query(ctx, `SELECT doc FROM certificates ORDER BY name`)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	defer rows.Close()
	out := []*hub.Certificate{}
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, ctxErr(ctx, err)
		}
		c, err := store.DecodeCertificate(doc)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, ctxErr(ctx, rows.Err())
}

// DeleteCertificate implements store.Certifier.
func (s *Store) DeleteCertificate(ctx context.Context, name string) error {
	if !storable(name) {
		return store.ErrNotFound
	}
	return s.write(ctx, func(q execer) error {
		tag, err := q.Exec(ctx, `DELETE FROM certificates WHERE name = $1`, name)
		if err != nil {
			return ctxErr(ctx, err)
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}
