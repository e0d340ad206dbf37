package cri

import "strings"

// expand replaces the $(VAR) references in s the way Kubernetes expands container command, args
// and env values:
//
//   - $(VAR) is replaced by the value of VAR when lookup knows it, and left as written otherwise;
//   - $$ is an escaped $: "$$(VAR)" becomes the literal "$(VAR)" and is not expanded;
//   - a $ followed by anything else, an unclosed "$(VAR" and a trailing $ are kept as written.
func expand(s string, lookup func(name string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			i++
			continue
		}
		switch next := s[i+1]; next {
		case '$': // escaped dollar
			b.WriteByte('$')
			i += 2
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				// Unclosed reference: keep "$(" and go on with what follows it.
				b.WriteString("$(")
				i += 2
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok && name != "" {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 3 + end
		default:
			b.WriteByte('$')
			b.WriteByte(next)
			i += 2
		}
	}
	return b.String()
}

// mapLookup is a lookup for expand over a map of defined variables.
func mapLookup(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// ExpandVars expands $(VAR) references in s with vars, by the rules of a container's command
// (subPathExpr uses them too): unknown variables stay as written, $$ is a literal $.
func ExpandVars(s string, vars map[string]string) string {
	return expand(s, mapLookup(vars))
}
