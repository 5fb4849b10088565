package rules

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"
	schedulingapi "k8s.io/kubernetes/pkg/apis/scheduling"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/priorityclass"
)

// PriorityClass is the name of the rule that finds DaemonSets whose pods
// cannot preempt their way onto a full node.
const PriorityClass = "priority-class"

// PriorityClassOptions configures priority-class.
type PriorityClassOptions struct {
	// CriticalNamespaces hold the node agents a cluster cannot run without
	// (CNI, storage, kube-proxy): their DaemonSets need at least Minimum.
	CriticalNamespaces []string `json:"criticalNamespaces"`
	// Minimum names the PriorityClass whose value DaemonSets in critical
	// namespaces need at least.
	Minimum string `json:"minimum"`
}

// Validate implements policy.Options.
func (o *PriorityClassOptions) Validate(path *field.Path) field.ErrorList {
	if o.Minimum == "" {
		return field.ErrorList{field.Required(path.Child("minimum"), "name the PriorityClass that DaemonSets in critical namespaces need at least, such as system-node-critical")}
	}
	return nil
}

// PriorityClasses is the view of the cluster's PriorityClasses that the
// priority-class rule needs. *priorityclass.Classes implements it.
type PriorityClasses interface {
	Synced() bool
	Get(name string) (priorityclass.Class, bool)
	GlobalDefault() (priorityclass.Class, bool)
}

// PriorityClass declares the rule.
func (builtin) PriorityClass() Rule {
	return Rule{
		Spec: policy.Spec{Name: PriorityClass, Kind: policy.Validating, Default: policy.Warn,
			Options: func() policy.Options {
				return &PriorityClassOptions{CriticalNamespaces: []string{"kube-system"}, Minimum: schedulingapi.SystemNodeCritical}
			}},
		Summary: "the DaemonSet's pods can preempt their way onto a full node",
		Description: "The scheduler preempts only pods of strictly lower priority, so a daemon pod at the priority of ordinary pods " +
			"(no priorityClassName, or a class not above the global default) stays Pending for good on a node that ordinary pods have filled, " +
			"and so does one whose class has preemptionPolicy Never. On create, and on an update that rolls the pods, the rule resolves the " +
			"priorityClassName against the cluster's PriorityClasses as the API server's Priority admission plugin does, and warns of such a " +
			"priority, of a class that does not exist (the API server then refuses every daemon pod), and, in the namespaces of the option " +
			"criticalNamespaces (default kube-system), of a value below that of the class the option minimum names (default system-node-critical).",
		Check: priorityClass,
	}
}

// priorityClass resolves the template's priority as the Priority admission
// plugin will for each daemon pod, and finds the pods that cannot preempt.
func priorityClass(in *Input) ([]Finding, error) {
	if in.Operation == Update && !in.rollsPods() {
		return nil, nil
	}
	path := field.NewPath("spec", "template", "spec", "priorityClassName")
	finding := func(format string, args ...any) []Finding {
		return []Finding{{Rule: PriorityClass, Field: path, Message: fmt.Sprintf(format, args...)}}
	}
	classes := priorityClassView{in.PriorityClasses}
	name := in.Object.Spec.Template.Spec.PriorityClassName
	def := classes.globalDefault()
	class := def
	if name != "" {
		var ok bool
		if class, ok = classes.get(name); !ok && !classes.complete() {
			return classes.unknown(path, name), nil
		} else if !ok {
			return finding("no PriorityClass %s exists, so the API server refuses every pod of the DaemonSet: create it, or name an existing class such as %s",
				name, schedulingapi.SystemNodeCritical), nil
		}
	}
	opts := policy.OptionsOf[*PriorityClassOptions](in.Policy, PriorityClass)
	if slices.Contains(opts.CriticalNamespaces, in.Object.Namespace) {
		minimum, ok := classes.get(opts.Minimum)
		if !ok && !classes.complete() {
			return classes.unknown(path, opts.Minimum), nil
		} else if !ok {
			return nil, fmt.Errorf("the policy's minimum PriorityClass %q does not exist", opts.Minimum)
		}
		if class.Value < minimum.Value {
			return finding("namespace %s is critical in the policy, which asks its DaemonSets for PriorityClass %s (value %d) or above, and %s: "+
				"on a full node its pods wait behind pods that matter less; set priorityClassName: %s",
				in.Object.Namespace, minimum.Name, minimum.Value, classes.priorityOf(name, class), minimum.Name), nil
		}
	} else if class.Value <= def.Value {
		return finding("%s, as ordinary pods do: the scheduler preempts only pods of strictly lower priority, so on a node that ordinary pods "+
			"have filled a daemon pod stays Pending for good; set priorityClassName: %s for a node agent, or name a class above the default",
			classes.priorityOf(name, class), schedulingapi.SystemNodeCritical), nil
	}
	if !class.Preempts {
		return finding("PriorityClass %s has preemptionPolicy Never, so the scheduler preempts nothing for the DaemonSet's pods and on a full node "+
			"they stay Pending for good; name a class that preempts", class.Name), nil
	}
	return nil, nil
}

// priorityClassView answers from the cluster's PriorityClasses when they are
// known, and otherwise from the system classes every API server creates.
type priorityClassView struct{ classes PriorityClasses }

func (v priorityClassView) complete() bool { return v.classes != nil && v.classes.Synced() }

// unknown says that a class other than the system ones was not checked,
// because the cluster's classes are not known.
func (priorityClassView) unknown(path *field.Path, name string) []Finding {
	return []Finding{{Rule: PriorityClass, Action: policy.Warn, Field: path,
		Message: fmt.Sprintf("the cluster's PriorityClasses are not known here, so PriorityClass %q was not checked", name)}}
}

func (v priorityClassView) get(name string) (priorityclass.Class, bool) {
	if v.complete() {
		return v.classes.Get(name)
	}
	return priorityclass.System(name)
}

// globalDefault returns what pods without a priorityClassName get: the
// global default class, or priority 0 when none is, as the Priority admission
// plugin decides.
func (v priorityClassView) globalDefault() priorityclass.Class {
	if v.complete() {
		if def, ok := v.classes.GlobalDefault(); ok {
			return def
		}
	}
	return priorityclass.Class{Value: schedulingapi.DefaultPriorityWhenNoDefaultClassExists, Preempts: true}
}

// priorityOf says what priority the template's pods get, without a number
// it cannot know.
func (v priorityClassView) priorityOf(name string, class priorityclass.Class) string {
	switch {
	case name != "":
		return fmt.Sprintf("its PriorityClass %s has value %d", name, class.Value)
	case class.Name != "":
		return fmt.Sprintf("the DaemonSet has no priorityClassName, so its pods get the global default PriorityClass %s (value %d)", class.Name, class.Value)
	case v.complete():
		return fmt.Sprintf("the DaemonSet has no priorityClassName, so its pods get priority %d", class.Value)
	default:
		return "the DaemonSet has no priorityClassName, so its pods get the default priority"
	}
}
