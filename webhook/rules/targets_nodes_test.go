package rules

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
)

func TestNodeChange(t *testing.T) {
	none := inventory.Coverage{Nodes: 10, Exclusions: []inventory.Exclusion{{Reason: "lack label pool=blue", Nodes: 10}}}
	some := func(eligible int) inventory.Coverage {
		return inventory.Coverage{Nodes: 10, Eligible: eligible, Exclusions: []inventory.Exclusion{{Reason: "lack label pool=blue", Nodes: 10 - eligible}}}
	}
	skipped := func(ds *appsv1.DaemonSet) { ds.Annotations = map[string]string{SkipAnnotation: TargetsNodes} }
	tests := []struct {
		name            string
		ds              *appsv1.DaemonSet
		before, deleted int
		now             inventory.Coverage
		shrinkEvent     string
		wantReason      string
		wantNote        string
	}{
		{
			name: "reports a DaemonSet left with no node, with the reasons", ds: fixture.DaemonSet("agent"), before: 10, now: none,
			wantReason: NoEligibleNodes, wantNote: "a node change left the DaemonSet with no node to run on (it had 10): 0 of 10 nodes: 10 lack label pool=blue",
		},
		{
			name: "reports a DaemonSet left with no node even when its nodes were deleted", ds: fixture.DaemonSet("agent"), before: 3, deleted: 3,
			now: inventory.Coverage{}, wantReason: NoEligibleNodes, wantNote: "(it had 3): 0 of 0 nodes",
		},
		{
			name: "reports more than half of the eligible nodes made ineligible", ds: fixture.DaemonSet("agent"), before: 10, now: some(4),
			wantReason: EligibleNodesShrank, wantNote: "a node change made 6 of the DaemonSet's 10 eligible nodes ineligible, more than the policy's 50%: it now runs on 4 of 10 nodes: 6 lack label pool=blue",
		},
		{
			name: "says nothing of exactly half", ds: fixture.DaemonSet("agent"), before: 10, now: some(5),
		},
		{
			name: "counts no deleted node towards a shrink", ds: fixture.DaemonSet("agent"), before: 10, deleted: 5, now: some(4),
		},
		{
			name: "follows the policy's shrinkEvent", ds: fixture.DaemonSet("agent"), before: 10, now: some(8), shrinkEvent: "10%",
			wantReason: EligibleNodesShrank, wantNote: "made 2 of the DaemonSet's 10 eligible nodes ineligible, more than the policy's 10%",
		},
		{
			name: "says nothing of a DaemonSet that gained nodes", ds: fixture.DaemonSet("agent"), before: 4, now: some(10),
		},
		{
			name: "says nothing of a DaemonSet whose targets-nodes is skipped", ds: fixture.DaemonSet("agent", skipped), before: 10, now: none,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy.Default(Builtin())
			if tt.shrinkEvent != "" {
				policy.OptionsOf[*TargetsNodesOptions](p, TargetsNodes).ShrinkEvent = intstr.FromString(tt.shrinkEvent)
			}
			reason, note := NodeChange(p, tt.ds, tt.before, tt.deleted, tt.now)
			if reason != tt.wantReason || !strings.Contains(note, tt.wantNote) || (tt.wantNote == "") != (note == "") {
				t.Errorf("NodeChange = %q, %q; want %q, a note containing %q", reason, note, tt.wantReason, tt.wantNote)
			}
		})
	}
}

func TestNodeChangeIsSilentWhenTargetsNodesIsOff(t *testing.T) {
	p, err := policy.Parse([]byte("apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\nrules:\n  targets-nodes: {action: off}\n"), Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if reason, _ := NodeChange(p, fixture.DaemonSet("agent"), 10, 0, inventory.Coverage{Nodes: 10}); reason != "" {
		t.Errorf("NodeChange = %q with targets-nodes off, want nothing", reason)
	}
}
