package simulate

import (
	"reflect"
	"testing"
)

func TestReportedHelpers(t *testing.T) {
	obj := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	t.Run("differing", func(t *testing.T) {
		tests := []struct {
			name              string
			desired, reported map[string]any
			want              map[string]any
		}{
			{"equal", obj("a", 1.0), obj("a", 1), nil},
			{"missing", obj("a", "x"), obj(), obj("a", "x")},
			{"changed", obj("a", "x"), obj("a", "y"), obj("a", "x")},
			{"deep equal whatever the key order", obj("c", obj("p", 1, "q", []any{1, "z"})), obj("c", obj("q", []any{1.0, "z"}, "p", 1.0)), nil},
			{"deep difference", obj("c", obj("p", 1)), obj("c", obj("p", 2)), obj("c", obj("p", 1))},
			{"twin keys are not properties", obj("$version", 4.0, "$metadata", obj(), "a", 1), obj("a", 1), nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := differing(tt.desired, tt.reported); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("differing = %v, want %v", got, tt.want)
				}
			})
		}
	})
	t.Run("mergeReported", func(t *testing.T) {
		nested := obj("x", 1, "y", 2)
		dst := obj("keep", 1, "gone", 2, "n", nested)
		view := map[string]any{"n": nested} // shares the nested object
		mergeReported(dst, obj("gone", nil, "n", obj("y", nil, "z", obj("w", nil, "v", 3)), "new", "a"))
		want := obj("keep", 1, "n", obj("x", 1, "z", obj("v", 3)), "new", "a")
		if !reflect.DeepEqual(dst, want) {
			t.Errorf("merged = %v, want %v", dst, want)
		}
		if !reflect.DeepEqual(view["n"], obj("x", 1, "y", 2)) {
			t.Errorf("the shared nested object changed: %v", view["n"])
		}
	})
	t.Run("holdsAll", func(t *testing.T) {
		r := obj("firmware", "2.4.1", "health", obj("ok", true))
		for _, tt := range []struct {
			want map[string]any
			ok   bool
		}{
			{obj("firmware", "2.4.1"), true},
			{obj("firmware", "2.4.1", "health", obj("ok", true)), true},
			{obj("firmware", "2.4.0"), false},
			{obj("model", "x"), false},
		} {
			if got := holdsAll(r, tt.want); got != tt.ok {
				t.Errorf("holdsAll(%v) = %v, want %v", tt.want, got, tt.ok)
			}
		}
	})
}
