package query

// PLACEHOLDER: the real implementation replaces this file.

import "fmt"

// SyntaxError is a query syntax error at a byte offset of the query text.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg) }

// Expr is a parsed condition.
type Expr interface{}

// ParseCondition parses a WHERE condition (a job's queryCondition; "*"
// means every device).
func ParseCondition(src string) (Expr, error) { return nil, nil }
