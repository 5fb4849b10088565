package policy

import (
	"os"
	"testing"
)

// FuzzParse checks that no document makes the parser panic, and that what it
// accepts is valid.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte("apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\n"))
	f.Add([]byte("apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\nrules: {targets-nodes: {action: off}}\n"))
	f.Add([]byte("{{{"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := Parse(doc)
		if err != nil {
			return
		}
		if errs := p.Validate(); len(errs) > 0 {
			t.Fatalf("Parse accepted an invalid policy: %v", errs)
		}
	})
}
