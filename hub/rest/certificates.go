package rest

import (
	"context"
	"net/http"

	"github.com/iotjobs/iotjobs/hub"
)

// Azure's certificates API (CertificateDescription and its list), served
// at /certificates with our SAS authentication: CA certificates that
// certificateAuthority devices chain to. Azure serves it through Azure
// Resource Manager; the body shapes are Azure's.

// certificateRoutes are the certificates API's routes, authorized as the
// rest of the API.
func (s *Server) certificateRoutes() map[string]handlerFunc {
	return map[string]handlerFunc{
		"PUT /certificates/{name}":    s.putCertificate,
		"GET /certificates":           s.listCertificates,
		"GET /certificates/{name}":    s.getCertificate,
		"DELETE /certificates/{name}": s.deleteCertificate,
	}
}

// certificates is the hub's CA registry, or an error when the hub behind
// the server has none (the dry-run's simulated hub).
func (s *Server) certificates() (hub.Certificates, error) {
	c, ok := s.Hub.(hub.Certificates)
	if !ok {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "this hub keeps no CA certificates")
	}
	return c, nil
}

// putCertificate registers a CA certificate from
// {"properties":{"certificate":"<PEM>","isVerified":true}}; without
// If-Match it must be new, with it ("*" or its etag) it is replaced.
func (s *Server) putCertificate(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.certificates()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := hub.CheckCertificateName(name); err != nil {
		return err
	}
	etag, _, err := ifMatch(r)
	if err != nil {
		return err
	}
	var c hub.Certificate
	if err := readJSON(w, r, &c); err != nil {
		return err
	}
	if c.Properties.Certificate == "" {
		return hub.Errorf(hub.CodeArgumentInvalid, "properties.certificate is missing: send the CA certificate's PEM text")
	}
	out, err := cs.PutCertificate(r.Context(), name, &c, etag)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// certificateList is Azure's CertificateListDescription.
type certificateList struct {
	Value []*hub.Certificate `json:"value"`
}

func (s *Server) listCertificates(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.certificates()
	if err != nil {
		return err
	}
	l, err := cs.ListCertificates(r.Context())
	if err != nil {
		return err
	}
	if l == nil {
		l = []*hub.Certificate{}
	}
	writeJSON(w, http.StatusOK, certificateList{Value: l})
	return nil
}

func (s *Server) getCertificate(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.certificates()
	if err != nil {
		return err
	}
	c, err := cs.GetCertificate(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

// deleteCertificate removes a CA certificate; without If-Match, or with
// "*", whatever its etag.
func (s *Server) deleteCertificate(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.certificates()
	if err != nil {
		return err
	}
	etag, _, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := cs.DeleteCertificate(r.Context(), r.PathValue("name"), etag); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

var _ hub.Certificates = (*Client)(nil)

// PutCertificate registers CA certificate name (hub.Certificates): etag
// "" creates it, "*" or its etag replaces it.
func (c *Client) PutCertificate(ctx context.Context, name string, cert *hub.Certificate, etag string) (*hub.Certificate, error) {
	if cert == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "put certificate: no certificate given")
	}
	var h http.Header
	if etag != "" {
		h = http.Header{"If-Match": {quoteETag(etag)}}
	}
	var out hub.Certificate
	if _, err := c.do(ctx, call{method: http.MethodPut, path: "/certificates/{id}", id: name, in: cert, out: &out, header: h}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetCertificate returns CA certificate name. Errors: CertificateNotFound.
func (c *Client) GetCertificate(ctx context.Context, name string) (*hub.Certificate, error) {
	var out hub.Certificate
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/certificates/{id}", id: name, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListCertificates returns the hub's CA certificates, by name.
func (c *Client) ListCertificates(ctx context.Context) ([]*hub.Certificate, error) {
	var out certificateList
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/certificates", out: &out}); err != nil {
		return nil, err
	}
	return out.Value, nil
}

// DeleteCertificate removes CA certificate name when etag ("" and "*"
// match any) matches. Errors: CertificateNotFound, PreconditionFailed.
func (c *Client) DeleteCertificate(ctx context.Context, name, etag string) error {
	_, err := c.do(ctx, call{method: http.MethodDelete, path: "/certificates/{id}", id: name,
		header: http.Header{"If-Match": {quoteETag(etag)}}})
	return err
}
