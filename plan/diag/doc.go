// Package diag holds source positions and diagnostics for iotjobs' YAML
// files (plans and simulator fleet files), and a strict walker over
// gopkg.in/yaml.v3 nodes that produces them.
//
// Diagnostics are values: a decoder collects every problem it finds into a
// [Diagnostics] list instead of stopping at the first, and the list is
// rendered for humans with [WriteText] (FILE:LINE:COL, the source line, a
// caret and a hint) or for machines as JSON. The walker ([Decode], [Node],
// [Object]) exists because yaml.v3's own struct decoding loses strictness in
// custom unmarshalers, reports Go type names and only line numbers; walking
// the node tree ourselves lets every value keep its [Range] and every
// mistake get a precise, actionable message.
//
// The package is a leaf: it imports only the standard library and yaml.v3.
package diag
