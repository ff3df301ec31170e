// Package browser drives a headless Chromium for tests of self-contained
// HTML pages (the runner's HTML report): it opens a local file, reads and
// changes its DOM after the page's scripts ran, lists every network request
// the page makes, takes screenshots and times a page's render. Without a
// Chromium (Debian's chromium, or $IOTJOBS_CHROMIUM) tests skip, unless
// IOTJOBS_REQUIRE_CHROMIUM is set (CI), which makes them fail.
package browser
