package sqlite

import (
	"database/sql/driver"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	msqlite "modernc.org/sqlite"
)

// fnGroups is the aggregate that counts the groups of a COUNT()-only
// query in one pass: iotjobs_query_groups(key, v1, ..., vn) counts the
// rows of each distinct (v1, ..., vn), the JSON texts of the grouped paths
// (NULL for undefined), and keeps the least key of each group. Its value
// is the JSON of []countedGroup, in key order.
//
// SQLite's own GROUP BY sorts every row first (a sorter that is most of
// the cost on a large fleet); a hash map needs one lookup per row.
const fnGroups = "iotjobs_query_groups"

// countedGroup is one group of fnGroups' result.
type countedGroup struct {
	First string    `json:"k"` // the least key of the group's rows
	Vals  []*string `json:"v"` // the grouped values, nil where undefined
	N     int       `json:"n"`
}

type groupsAgg struct {
	groups map[string]*countedGroup
	key    []byte
}

func (a *groupsAgg) Step(_ *msqlite.FunctionContext, args []driver.Value) error {
	if len(args) == 0 {
		return errors.New(fnGroups + ": no key argument")
	}
	first, ok := text(args[0])
	if !ok {
		return errors.New(fnGroups + ": the key is not text")
	}
	// The map key encodes each value with its length, so that no two
	// different lists of values share one.
	a.key = a.key[:0]
	for _, v := range args[1:] {
		s, ok := text(v)
		if !ok {
			a.key = append(a.key, 'u')
			continue
		}
		a.key = append(a.key, 's')
		a.key = binary.AppendUvarint(a.key, uint64(len(s)))
		a.key = append(a.key, s...)
	}
	g := a.groups[string(a.key)]
	if g == nil {
		// The arguments are volatile (VolatileArgs): keep copies.
		g = &countedGroup{First: strings.Clone(first), Vals: make([]*string, len(args)-1)}
		for i, v := range args[1:] {
			if s, ok := text(v); ok {
				c := strings.Clone(s)
				g.Vals[i] = &c
			}
		}
		a.groups[string(a.key)] = g
	} else if first < g.First {
		g.First = strings.Clone(first)
	}
	g.N++
	return nil
}

// text is the value of a TEXT argument.
func text(v driver.Value) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	return "", false
}

func (a *groupsAgg) WindowInverse(*msqlite.FunctionContext, []driver.Value) error {
	return errors.New(fnGroups + " is not a window function")
}

func (a *groupsAgg) WindowValue(*msqlite.FunctionContext) (driver.Value, error) {
	out := make([]*countedGroup, 0, len(a.groups))
	for _, g := range a.groups {
		out = append(out, g)
	}
	slices.SortFunc(out, func(x, y *countedGroup) int { return strings.Compare(x.First, y.First) })
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func (a *groupsAgg) Final(*msqlite.FunctionContext) {}

func init() {
	msqlite.MustRegisterFunction(fnGroups, &msqlite.FunctionImpl{
		NArgs:         -1,
		Deterministic: true,
		VolatileArgs:  true,
		MakeAggregate: func(msqlite.FunctionContext) (msqlite.AggregateFunction, error) {
			return &groupsAgg{groups: map[string]*countedGroup{}}, nil
		},
	})
}
