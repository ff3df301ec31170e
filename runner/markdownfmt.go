// The pieces of a dry-run report's Markdown (Report.WriteMarkdown):
// escaping, code spans, durations and folds.

package runner

import (
	"encoding/json"
	"fmt"
	"html"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/plan"
)

// mdDetails folds body under summary; nothing when body is empty. The
// blank lines let GitHub render the Markdown inside the HTML block.
func mdDetails(summary, body string) string {
	if body == "" {
		return ""
	}
	return "\n<details><summary>" + html.EscapeString(summary) + "</summary>\n\n" + strings.TrimPrefix(body, "\n") + "\n</details>\n"
}

// mdStatus is a step status with an emoji and its word.
func mdStatus(s StepStatus) string {
	switch s {
	case StepCompleted:
		return "✅ completed"
	case StepFailed:
		return "❌ failed"
	case StepAborted:
		return "⛔ aborted"
	case StepSkipped:
		return "⏭️ skipped"
	case StepCancelled:
		return "⏹️ cancelled"
	}
	return string(s)
}

// mdClasses is "3 verify, 1 offline", in the classes' order.
func mdClasses(by map[string]int) string {
	var parts []string
	for _, c := range plan.AbortClasses {
		if n := by[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, c))
		}
	}
	return strings.Join(parts, ", ")
}

// mdRow is a table row; cells are escaped for the table already, but a
// pipe is not allowed to end one.
func mdRow(cells ...string) string {
	for i, c := range cells {
		cells[i] = mdCell(c)
	}
	return "| " + strings.Join(cells, " | ") + " |\n"
}

// mdCell keeps a cell on one line and its pipes inside it (GFM splits a
// row at every unescaped pipe, inside code spans too).
func mdCell(s string) string {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			b.WriteByte(s[i])
			b.WriteByte(s[i+1])
			i++
			continue
		}
		if s[i] == '|' {
			b.WriteString(`\|`)
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mdText is plain text safe in Markdown: the characters that would start
// emphasis, code, links or HTML are escaped.
func mdText(s string) string {
	var b strings.Builder
	for _, r := range strings.ReplaceAll(s, "\n", " ") {
		switch r {
		case '\\', '`', '*', '_', '[', ']', '#', '|', '~':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdCode is s as a code span, fenced with more backticks than it holds.
func mdCode(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	run, longest := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || s == "" {
		s = " " + s + " "
	}
	return fence + s + fence
}

// mdValue is a JSON value as a code span.
func mdValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return mdText(fmt.Sprint(v))
	}
	return mdCode(string(b))
}

// mdComment is s safe inside an HTML comment.
func mdComment(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "--", "- -"), ">", "&gt;")
}

// mdSample is the first n of ids, and how many more.
func mdSample(ids []string, n int) string {
	out := make([]string, 0, n)
	for _, id := range ids[:min(n, len(ids))] {
		out = append(out, mdCode(id))
	}
	s := strings.Join(out, ", ")
	if more := len(ids) - n; more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

// mdDuration is a duration without its zero units: "26m", "1h30m",
// "20ms".
func mdDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	days := ""
	if d >= 24*time.Hour {
		days = fmt.Sprintf("%dd", d/(24*time.Hour))
		if d %= 24 * time.Hour; d == 0 {
			return days
		}
	}
	s := days + d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func mdPercent(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", f*100), "0"), ".") + "%"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// mdTruncate cuts s to at most limit bytes at a line's end, and says so
// and what was left out before.
func mdTruncate(s string, limit int, omitted string) string {
	note := "\n_Cut here to stay under GitHub's comment limit; left out before: " + omitted + ". `iotjobs plan --report FILE` writes everything._\n"
	cut := max(0, limit-len(note))
	if i := strings.LastIndexByte(s[:cut], '\n'); i >= 0 {
		cut = i + 1
	}
	return s[:cut] + note
}

// mdLinkTarget is a URL safe inside a Markdown link: spaces and the
// characters that would end it are percent-encoded.
func mdLinkTarget(u string) string {
	return strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29", "<", "%3C", ">", "%3E").Replace(u)
}
