package main

import (
	"regexp"
	"strings"
)

// Messages from the YAML decoder name Go types ("field max_attemps not
// found in type resilience.RetryPolicy", "cannot unmarshal !!seq into
// string"); userMessage says the same in the file's terms: the key, and
// the kind of value wanted.
var (
	unknownFieldRE = regexp.MustCompile(`field (\S+) not found(?: in type [\w.*\[\]]+)?`)
	unmarshalRE    = regexp.MustCompile("cannot unmarshal !!(\\w+)(?: `([^`]*)`)? into ([\\w.*\\[\\]]+)")
)

var yamlKinds = map[string]string{
	"seq": "a list", "map": "a mapping", "str": "a string", "int": "a number",
	"float": "a number", "bool": "true or false", "null": "nothing",
}

func wantOf(goType string) string {
	t := strings.TrimPrefix(goType, "*")
	switch {
	case strings.HasSuffix(t, "Duration"):
		return "a duration such as 30s"
	case strings.HasSuffix(t, "Size"):
		return "a size such as 64MiB"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	}
	return "another kind of value"
}

func userMessage(s string) string {
	s = unknownFieldRE.ReplaceAllString(s, `unknown key "$1"`)
	return unmarshalRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := unmarshalRE.FindStringSubmatch(m)
		got := yamlKinds[sub[1]]
		if got == "" {
			got = sub[1]
		}
		if sub[2] != "" {
			got += " (" + sub[2] + ")"
		}
		return "want " + wantOf(sub[3]) + ", got " + got
	})
}
