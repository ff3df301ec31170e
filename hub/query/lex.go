package query

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF     tokKind = iota
	tErr             // a lexical error; msg says what is wrong
	tIdent           // identifier or keyword
	tNumber          // number literal; num holds the value
	tString          // string literal; str holds the decoded value
	tEscaped         // [[name]]; str holds the name
	tPunct           // operator or punctuation; text holds the symbol
)

type token struct {
	kind     tokKind
	pos, end int // byte offsets in the source
	text     string
	str      string
	num      float64
	msg      string // tErr only
}

// lex splits src into tokens. The last token is tEOF, or tErr at the first
// lexical error: the parser reports it only if it gets that far, so an
// earlier syntax error is reported first.
func lex(src string) []token {
	var toks []token
	i := 0
	for {
		for i < len(src) && isSpace(src[i]) {
			i++
		}
		if i >= len(src) {
			return append(toks, token{kind: tEOF, pos: i, end: i})
		}
		t := lexOne(src, i)
		toks = append(toks, t)
		if t.kind == tErr {
			return toks
		}
		i = t.end
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func errTok(pos int, format string, args ...any) token {
	return token{kind: tErr, pos: pos, end: pos, msg: fmt.Sprintf(format, args...)}
}

func lexOne(src string, i int) token {
	c := src[i]
	switch {
	case c >= '0' && c <= '9':
		return lexNumber(src, i)
	case c == '\'' || c == '"':
		return lexString(src, i)
	case c == '[' && strings.HasPrefix(src[i:], "[["):
		n := strings.Index(src[i+2:], "]]")
		if n < 0 {
			return errTok(i, "unterminated [[ escaped name; close it with ]]")
		}
		return token{kind: tEscaped, pos: i, end: i + 2 + n + 2, text: src[i : i+2+n+2], str: src[i+2 : i+2+n]}
	}
	for _, op := range []string{"!=", "<>", "<=", ">="} {
		if strings.HasPrefix(src[i:], op) {
			return token{kind: tPunct, pos: i, end: i + 2, text: op}
		}
	}
	switch c {
	case '=', '<', '>', '+', '-', '*', '/', '%', '(', ')', '[', ']', ',', '.':
		return token{kind: tPunct, pos: i, end: i + 1, text: src[i : i+1]}
	case '!':
		return errTok(i, "unexpected '!'; write != for not-equal or NOT to negate a condition")
	case '&':
		return errTok(i, "unexpected '&'; write AND to combine conditions")
	case '|':
		return errTok(i, "unexpected '|'; write OR to combine conditions")
	}
	r, n := utf8.DecodeRuneInString(src[i:])
	if r == utf8.RuneError && n <= 1 {
		return errTok(i, "invalid UTF-8 byte 0x%02x in the query", c)
	}
	if !isIdentStart(r) {
		return errTok(i, "unexpected character %q", r)
	}
	j := i + n
	for j < len(src) {
		r, n := utf8.DecodeRuneInString(src[j:])
		if r == utf8.RuneError && n <= 1 || !isIdentPart(r) {
			break
		}
		j += n
	}
	return token{kind: tIdent, pos: i, end: j, text: src[i:j]}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHexDigit(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// lexNumber reads a decimal literal (123, 1.5, 2e-3) or a hex literal
// (0x1F). A number running straight into a letter is an error rather than
// two tokens, so "3abc" is not read as 3 followed by a path.
func lexNumber(src string, i int) token {
	j := i
	var num float64
	if src[i] == '0' && i+1 < len(src) && (src[i+1] == 'x' || src[i+1] == 'X') {
		j = i + 2
		for j < len(src) && isHexDigit(src[j]) {
			j++
		}
		if j == i+2 {
			return errTok(i, "0x must be followed by hex digits")
		}
		u, err := strconv.ParseUint(src[i+2:j], 16, 64)
		if err != nil {
			return errTok(i, "hex number %s is too large", src[i:j])
		}
		num = float64(u)
	} else {
		for j < len(src) && isDigit(src[j]) {
			j++
		}
		if j+1 < len(src) && src[j] == '.' && isDigit(src[j+1]) {
			j++
			for j < len(src) && isDigit(src[j]) {
				j++
			}
		}
		if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
			k := j + 1
			if k < len(src) && (src[k] == '+' || src[k] == '-') {
				k++
			}
			if k >= len(src) || !isDigit(src[k]) {
				return errTok(i, "number %s has an exponent without digits", src[i:k])
			}
			for k < len(src) && isDigit(src[k]) {
				k++
			}
			j = k
		}
		f, err := strconv.ParseFloat(src[i:j], 64)
		if err != nil {
			return errTok(i, "number %s is out of range", src[i:j])
		}
		num = f
	}
	if j < len(src) {
		if r, _ := utf8.DecodeRuneInString(src[j:]); isIdentStart(r) {
			k := j
			for k < len(src) && k-i < 40 && !isSpace(src[k]) {
				k++
			}
			return errTok(i, "invalid number %q; a name cannot start with a digit", src[i:k])
		}
	}
	return token{kind: tNumber, pos: i, end: j, text: src[i:j], num: num}
}

// lexString reads a single- or double-quoted string with the escapes
// \' \" \\ \/ \b \f \n \r \t and \uXXXX (UTF-16 surrogate pairs combine).
// Other bytes, including invalid UTF-8, are taken as they are.
func lexString(src string, i int) token {
	q := src[i]
	var b strings.Builder
	j := i + 1
	for {
		if j >= len(src) {
			return errTok(i, "unterminated string; close it with %c", q)
		}
		c := src[j]
		if c == q {
			j++
			break
		}
		if c != '\\' {
			b.WriteByte(c)
			j++
			continue
		}
		if j+1 >= len(src) {
			return errTok(i, "unterminated string; close it with %c", q)
		}
		switch e := src[j+1]; e {
		case '\'', '"', '\\', '/':
			b.WriteByte(e)
			j += 2
		case 'b':
			b.WriteByte('\b')
			j += 2
		case 'f':
			b.WriteByte('\f')
			j += 2
		case 'n':
			b.WriteByte('\n')
			j += 2
		case 'r':
			b.WriteByte('\r')
			j += 2
		case 't':
			b.WriteByte('\t')
			j += 2
		case 'u':
			r, ok := hex4(src, j+2)
			if !ok {
				return errTok(j, `\u must be followed by 4 hex digits`)
			}
			j += 6
			if utf16.IsSurrogate(r) && strings.HasPrefix(src[j:], `\u`) {
				if r2, ok := hex4(src, j+2); ok {
					if c := utf16.DecodeRune(r, r2); c != utf8.RuneError {
						r = c
						j += 6
					}
				}
			}
			b.WriteRune(r) // a lone surrogate becomes U+FFFD
		default:
			return errTok(j, `unknown escape \%c in string; escape only \' \" \\ and \uXXXX`, e)
		}
	}
	return token{kind: tString, pos: i, end: j, text: src[i:j], str: b.String()}
}

func hex4(src string, i int) (rune, bool) {
	if i+4 > len(src) {
		return 0, false
	}
	for k := i; k < i+4; k++ {
		if !isHexDigit(src[k]) {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(src[i:i+4], 16, 32)
	return rune(v), err == nil
}

// Escape escapes s for the inside of a single-quoted string literal:
// "'" + Escape(s) + "'" reads back as s.
func Escape(s string) string { return escaper.Replace(s) }

var escaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`)
