package rules

import (
	"slices"
	"strings"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

// mutationRule changes the DaemonSet in place and reports whether it did.
type mutationRule struct {
	name  string
	apply func(in *Input) bool
}

var mutationRules = []mutationRule{
	{policy.DefaultTolerations, defaultTolerations},
	{policy.RollingUpdateDefaults, rollingUpdateDefaults},
}

// Mutate applies every enabled mutation rule to in.Object and returns the
// names of those that changed it. It is idempotent: a second call on its own
// result changes nothing. The rules that changed the object are added to its
// MutatedAnnotation, so that a user can see why a field has a value they did
// not write.
func Mutate(in *Input) []string {
	var changed []string
	for _, r := range mutationRules {
		if in.Policy.Action(r.name) == policy.Apply && applies(in, r.name) && r.apply(in) {
			changed = append(changed, r.name)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	var recorded []string
	if v := in.Object.Annotations[MutatedAnnotation]; v != "" {
		recorded = strings.Split(v, ",")
	}
	recorded = append(recorded, changed...)
	slices.Sort(recorded)
	if in.Object.Annotations == nil {
		in.Object.Annotations = map[string]string{}
	}
	in.Object.Annotations[MutatedAnnotation] = strings.Join(slices.Compact(recorded), ",")
	return changed
}
