package plan

import (
	"os"

	"github.com/iotjobs/iotjobs/plan/diag"
)

// LoadVarFile reads and parses the variables file at path (see
// [ParseVarFile]). A file that cannot be read is reported as a diagnostic
// too, as [Load] does.
func LoadVarFile(path string) (map[string]string, diag.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		var ds diag.Diagnostics
		ds.Append(diag.Errorf(diag.Range{Filename: path}, "", "cannot read variables file: %v", unwrapPathError(err)).
			Hint("check the file name and that the file is readable"))
		return nil, ds
	}
	return ParseVarFile(path, src)
}

// ParseVarFile decodes a variables file (iotjobs --var-file), values for
// [WithVars]: a YAML mapping of variable names to strings, numbers or
// booleans, each taken as written, like the values under a plan's vars:
// but without ${...} expansion. An empty file sets nothing. Decoding is as
// strict as a plan's: duplicate names, bad names, lists, objects and null
// values are errors at their position.
func ParseVarFile(filename string, src []byte) (map[string]string, diag.Diagnostics) {
	doc := diag.Decode(filename, src)
	vars := map[string]string{}
	if doc.Root != nil {
		if pairs, ok := doc.Root.Pairs(); ok {
			for _, p := range pairs {
				if !ValidVarName(p.Key) {
					p.KeyNd.Errorf("invalid variable name %q", p.Key).
						Hint("use letters, digits, '_' and '-', starting with a letter")
					continue
				}
				if v, ok := p.Value.Scalar(); ok {
					vars[p.Key] = v
				}
			}
		}
	}
	ds := doc.Diags
	ds.Sort()
	if ds.HasErrors() {
		return nil, ds
	}
	return vars, ds
}
