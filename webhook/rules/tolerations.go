package rules

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// Tolerated reports whether the tolerations already tolerate every taint that
// want tolerates, so that adding want would change nothing.
func Tolerated(tolerations []corev1.Toleration, want corev1.Toleration) bool {
	return slices.ContainsFunc(tolerations, func(have corev1.Toleration) bool { return covers(have, want) })
}

// covers reports whether every taint that b tolerates, a tolerates too, for at
// least as long. Operators other than Exists and Equal (the alpha comparison
// operators) cover nothing here, so that the wanted toleration is added.
func covers(a, b corev1.Toleration) bool {
	if a.Effect != "" && a.Effect != b.Effect {
		return false
	}
	if a.TolerationSeconds != nil && (b.TolerationSeconds == nil || *b.TolerationSeconds > *a.TolerationSeconds) {
		return false
	}
	aOp, bOp := operator(a), operator(b)
	switch {
	case aOp == corev1.TolerationOpExists && a.Key == "":
		return true
	case a.Key != b.Key:
		return false
	case aOp == corev1.TolerationOpExists:
		return bOp == corev1.TolerationOpExists || bOp == corev1.TolerationOpEqual
	case aOp == corev1.TolerationOpEqual:
		return bOp == corev1.TolerationOpEqual && a.Value == b.Value
	}
	return false
}

// operator returns the toleration's operator, defaulted as the API server does.
func operator(t corev1.Toleration) corev1.TolerationOperator {
	if t.Operator == "" {
		return corev1.TolerationOpEqual
	}
	return t.Operator
}
