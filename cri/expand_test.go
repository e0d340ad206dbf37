package cri

import "testing"

func TestExpand(t *testing.T) {
	vars := map[string]string{"VAR": "value", "EMPTY": "", "NESTED": "$(VAR)", "A": "a", "B": "b"}
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"plain", "plain"},
		{"$(VAR)", "value"},
		{"x$(VAR)y", "xvaluey"},
		{"$(VAR)$(VAR)", "valuevalue"},
		{"$(A)-$(B)", "a-b"},
		{"$(EMPTY)", ""},
		{"$(UNDEFINED)", "$(UNDEFINED)"},
		{"pre $(UNDEFINED) post $(VAR)", "pre $(UNDEFINED) post value"},
		{"$$(VAR)", "$(VAR)"},
		{"$$$(VAR)", "$value"},
		{"$$$$(VAR)", "$$(VAR)"},
		{"$$", "$"},
		{"$$$", "$$"},
		{"$", "$"},
		{"a$", "a$"},
		{"$VAR", "$VAR"},
		{"${VAR}", "${VAR}"},
		{"$(VAR", "$(VAR"},
		{"$(", "$("},
		{"$()", "$()"},
		{"$($(VAR))", "$($(VAR))"}, // the name is "$(VAR": undefined, kept as written
		{"$(NESTED)", "$(VAR)"},    // values are not expanded again
		{"100$", "100$"},
		{"$(VAR)$", "value$"},
	}
	for _, tt := range tests {
		if got := expand(tt.in, mapLookup(vars)); got != tt.want {
			t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
