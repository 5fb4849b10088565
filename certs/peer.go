package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
)

// AllowNames returns a tls.Config VerifyConnection that admits a client
// whose verified certificate names one of the allowed names, as its common
// name or one of its DNS names, and refuses every other certificate the
// client CA signed. It is the API server's --requestheader-allowed-names for
// the webhook: a CA that also signs kubelets' or controllers' client
// certificates then still lets only the API server call. With no names every
// verified certificate is admitted.
func AllowNames(allowed []string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(allowed) == 0 {
			return nil
		}
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			return errors.New("no verified client certificate")
		}
		leaf := cs.VerifiedChains[0][0]
		if slices.Contains(allowed, leaf.Subject.CommonName) || slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return slices.Contains(allowed, n) }) {
			return nil
		}
		return fmt.Errorf("the client certificate (CN %q, DNS names %v) names none of --client-ca-allowed-names", leaf.Subject.CommonName, leaf.DNSNames)
	}
}
