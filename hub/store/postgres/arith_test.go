package postgres_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/iotjobs/iotjobs/hub/query"
)

// TestArithmetic holds the SQL arithmetic of compiled queries (migrate.go)
// to the query language's own (query.Value of a constant expression) for
// every pair of float64s near the edges: zeros, subnormals, the smallest
// and largest normals, values whose products and quotients overflow or
// underflow, and exponent differences as large as float64 has. Undefined
// results must be NULL; defined ones equal (the sign of a zero does not
// matter to queries: it compares equal, and 1/±0 is undefined either way);
// and as many random pairs.
func TestArithmetic(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	vals := []float64{0, math.Copysign(0, -1), 5e-324, 1e-310, 2.2250738585072014e-308, 1e-200, 1e-150, 0.1, 0.3, 1, 1.5, 3, 7,
		9007199254740993, 1e21, 1e150, 1e200, 1e300, math.MaxFloat64, 123456789.125, 0.30000000000000004}
	for _, v := range vals[1:] {
		vals = append(vals, -v)
	}
	var as, bs []float64
	for _, a := range vals {
		for _, b := range vals {
			as, bs = append(as, a), append(bs, b)
		}
	}
	// And random finite float64s, from every exponent.
	r := rand.New(rand.NewPCG(1, 2))
	random := func() float64 {
		for {
			if f := math.Float64frombits(r.Uint64()); !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
		}
	}
	for range 5000 {
		as, bs = append(as, random()), append(bs, random())
	}
	rows, err := s.Pool().Query(ctx, `SELECT iotjobs_add(a, b), iotjobs_sub(a, b), iotjobs_mul(a, b), iotjobs_div(a, b), iotjobs_mod(a, b)
		FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS u(a, b, i) ORDER BY i`, as, bs)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ops := []string{"+", "-", "*", "/", "%"}
	i := 0
	for rows.Next() {
		got := make([]*float64, len(ops))
		dest := make([]any, len(ops))
		for j := range got {
			dest[j] = &got[j]
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		a, b := as[i], bs[i]
		for j, op := range ops {
			e := query.Binary{Op: op, L: query.Const{Value: a}, R: query.Const{Value: b}}
			want, ok := query.Value(e, nil)
			switch {
			case !ok && got[j] != nil:
				t.Errorf("%v %s %v = %v, want undefined (NULL)", a, op, b, *got[j])
			case ok && got[j] == nil:
				t.Errorf("%v %s %v = NULL, want %v", a, op, b, want)
			case ok && *got[j] != want.(float64):
				t.Errorf("%v %s %v = %v, want %v", a, op, b, *got[j], want)
			}
		}
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(as) {
		t.Fatalf("%d rows, want %d", i, len(as))
	}
	t.Logf("%d pairs, %d operators", len(as), len(ops))
}
