// Package query is the IoT Hub query language: lexer, parser, AST and the
// reference evaluator over twin JSON that defines what every store must
// answer.
package query
