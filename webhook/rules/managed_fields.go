package rules

import (
	"encoding/json"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// managedFields paths of the fields the mutation rules set.
var (
	maxUnavailablePath  = []string{"f:spec", "f:updateStrategy", "f:rollingUpdate", "f:maxUnavailable"}
	minReadySecondsPath = []string{"f:spec", "f:minReadySeconds"}
)

// fieldSet decodes a managedFields entry's field set; nil when it has none or
// it does not decode (a broken entry tells nothing).
func fieldSet(mf metav1.ManagedFieldsEntry) map[string]any {
	if mf.FieldsV1 == nil {
		return nil
	}
	var set map[string]any
	if json.Unmarshal(mf.FieldsV1.GetRawBytes(), &set) != nil {
		return nil
	}
	return set
}

// owns reports whether a managedFields field set contains the path.
func owns(set map[string]any, path []string) bool {
	for _, p := range path {
		next, ok := set[p].(map[string]any)
		if !ok {
			return false
		}
		set = next
	}
	return true
}

// otherManagers names the field managers, other than this request's, that
// own one of the paths in the new object. The API server records this
// request's changes in managedFields before admission, so on an update the
// entries it left exactly as they were in the stored object belong to
// others; on a create every entry is this request's.
func (in *Input) otherManagers(paths [][]string) []string {
	if in.Operation != Update {
		return nil
	}
	var names []string
	for _, mf := range in.Object.ManagedFields {
		unchanged := slices.ContainsFunc(in.OldObject.ManagedFields, func(old metav1.ManagedFieldsEntry) bool {
			return equality.Semantic.DeepEqual(old, mf)
		})
		if !unchanged {
			continue
		}
		set := fieldSet(mf)
		if slices.ContainsFunc(paths, func(p []string) bool { return owns(set, p) }) {
			names = append(names, mf.Manager)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
