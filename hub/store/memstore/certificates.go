package memstore

import (
	"cmp"
	"context"
	"slices"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

var _ store.Certifier = (*Store)(nil)

// A hub.Certificate holds no pointers: a copy is a deep copy.

// PutCertificate implements store.Certifier.
func (s *Store) PutCertificate(ctx context.Context, c *hub.Certificate) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	s.certs[c.Name] = *c
	return nil
}

// GetCertificate implements store.Certifier.
func (s *Store) GetCertificate(ctx context.Context, name string) (*hub.Certificate, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	c, ok := s.certs[name]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &c, nil
}

// ListCertificates implements store.Certifier.
func (s *Store) ListCertificates(ctx context.Context) ([]*hub.Certificate, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	out := make([]*hub.Certificate, 0, len(s.certs))
	for _, c := range s.certs {
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *hub.Certificate) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteCertificate implements store.Certifier.
func (s *Store) DeleteCertificate(ctx context.Context, name string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	if _, ok := s.certs[name]; !ok {
		return store.ErrNotFound
	}
	delete(s.certs, name)
	return nil
}
