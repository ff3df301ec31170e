// Package gfm reads Markdown as GitHub does (GitHub-flavoured Markdown,
// with goldmark), so that tests can check the structure of what
// iotjobs plan -o markdown writes: that its tables parse as tables, with
// the header cells and rows meant. It is imported by tests only.
package gfm
