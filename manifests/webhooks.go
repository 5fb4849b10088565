// Package manifests holds the definition of daemonset-guard's two webhooks,
// which the binary registers itself once it is ready (see webhooks.yaml).
package manifests

import _ "embed"

// Webhooks is webhooks.yaml: a MutatingWebhookConfiguration and a
// ValidatingWebhookConfiguration, in that order.
//
//go:embed webhooks.yaml
var Webhooks []byte
