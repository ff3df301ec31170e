package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
)

// eachRow runs the query q on c page by page and hands every row, decoded
// into a new T, to fn; it is how the runner reads anything from a hub, so
// that it works on any hub that pages as the contract says.
func eachRow[T any](ctx context.Context, c hub.Client, q string, fn func(*T) error) error {
	opts := hub.QueryOptions{PageSize: 1000}
	for {
		page, err := c.Query(ctx, q, opts)
		if err != nil {
			return err
		}
		for _, item := range page.Items {
			v := new(T)
			if err := json.Unmarshal(item, v); err != nil {
				return fmt.Errorf("decode query row: %w", err)
			}
			if err := fn(v); err != nil {
				return err
			}
		}
		if page.Continuation == "" {
			return nil
		}
		opts.Continuation = page.Continuation
	}
}

// deviceQuery is "SELECT sel FROM devices" restricted by a step's query
// condition ("*" selects every device).
func deviceQuery(sel, condition string) string {
	q := "SELECT " + sel + " FROM devices"
	if strings.TrimSpace(condition) != "*" {
		q += " WHERE " + condition
	}
	return q
}

// idRow is a query row holding a device id.
type idRow struct {
	DeviceID string `json:"deviceId"`
}
