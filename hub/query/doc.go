// Package query is the IoT Hub query language: lexer, parser, syntax tree
// and the reference evaluator over twin JSON that defines what every store
// must answer.
//
// [Parse] reads a whole query (SELECT ... FROM devices | devices.modules |
// devices.jobs [WHERE ...] [GROUP BY ...]); [ParseCondition] reads only the
// condition, as a job's queryCondition is written ("*" selects every
// device). Both return *[SyntaxError] with a byte offset and a message an
// operator can act on. [Match] and [Eval] are the reference semantics: stores
// that compile the tree to SQL are tested against them.
//
// # Documents and paths
//
// Documents are JSON objects decoded by encoding/json (numbers are
// float64). A path such as tags.location.region is rooted at the document
// and walks objects only. The first segment of a top-level system field
// (deviceId, status, connectionState, lastActivityTime, version, etag,
// jobId, ...) matches case-insensitively and the parser stores its
// canonical spelling; every other key is case-sensitive. In a query FROM
// devices.jobs, paths are written devices.jobs.jobId and the prefix is
// stripped (bare jobId works too). Reserved words (the keywords such as
// group, count, top, in, the literals true, false, null, undefined and the
// IS_* function names) cannot be bare segments or AS names; [[group]]
// escapes any name. Identifiers may contain '-', so write a - b with
// spaces to subtract.
//
// # Values
//
// An expression evaluates to null, a bool, a number, a string, an object,
// an array, or undefined. A missing path is undefined, which is not null:
// IS_DEFINED(p) is true for a present null, and p = null is true only for
// a present null. The literal undefined is undefined.
//
// Comparisons (= != <> < > <= >=) are defined only between primitives of
// the same type: numbers, strings (case-sensitive, by byte order), bools
// (false < true), and null with = and != only. Every other comparison —
// an undefined operand, mixed types, objects or arrays — is undefined, for
// every operator including !=. x IN [a, b] means x = a OR x = b and
// x NIN [a, b] means NOT (x IN [a, b]) (NOT IN is accepted as NIN).
//
// Arithmetic (+ - * / % and unary -) is defined on numbers only; anything
// else, division or remainder by zero, and non-finite results are
// undefined.
//
// # Logic
//
// AND, OR and NOT use three-valued (Kleene) logic, the same as SQL with
// undefined in the role of NULL: a bool operand is true or false, and any
// other value (undefined, null, a number, ...) is unknown.
//
//	NOT unknown = unknown
//	false AND unknown = false     true AND unknown = unknown
//	true OR unknown = true        false OR unknown = unknown
//
// A condition holds only when it evaluates to true. So for a device whose
// tags.floor is missing or a string, tags.floor = 1, tags.floor != 1,
// NOT (tags.floor = 1), tags.floor NIN [1] and NOT (tags.floor IN [1]) are
// all false; NOT IS_DEFINED(tags.floor) selects the devices that lack it
// and IS_STRING(tags.floor) those where it is a string.
//
// # Functions
//
// IS_DEFINED, IS_NULL, IS_STRING, IS_NUMBER, IS_BOOL, IS_OBJECT, IS_ARRAY
// and IS_PRIMITIVE always return a bool. STARTSWITH, ENDSWITH (also spelled
// STARTS_WITH, ENDS_WITH) and CONTAINS take two strings, case-sensitively;
// LOWER and UPPER (Unicode case mapping) and LENGTH (in Unicode code points)
// take one string. Given anything else they are undefined. Function names
// and keywords are case-insensitive; an unknown function or a wrong number
// of arguments is a SyntaxError at the function name.
//
// # Limits
//
// Query text longer than [MaxLength] bytes and nesting deeper than
// [MaxDepth] levels of parentheses, NOT, unary minus or function calls are
// SyntaxErrors. Array constants are accepted only as IN and NIN lists, and
// ORDER BY is not supported.
package query
