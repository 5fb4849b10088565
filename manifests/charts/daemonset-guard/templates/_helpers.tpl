{{/*
Names are fixed, not derived from the release: the webhook configurations
and the RBAC that names them are cluster-wide, the ValidatingAdmissionPolicy
of webhook-configurations-policy.yaml names them, and so one release per
cluster is all there can be.
*/}}

{{/* The labels of every object: the kustomize base's, and Helm's own. */}}
{{- define "daemonset-guard.labels" -}}
app.kubernetes.io/name: daemonset-guard
app.kubernetes.io/part-of: daemonset-guard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The webhook's ServiceAccount, as RBAC subjects name it. */}}
{{- define "daemonset-guard.subject" -}}
- kind: ServiceAccount
  name: daemonset-guard
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/* The image, by digest when one is given. */}}
{{- define "daemonset-guard.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/*
What the chart refuses to install, each with what to do instead: an install
the webhook could never start in, or one that blocks what it must not.
*/}}
{{- define "daemonset-guard.refusals" -}}
{{- if and (eq .Values.certificates.mode "cert-manager") .Values.certificates.certManager.verifyAPI (not (.Capabilities.APIVersions.Has "cert-manager.io/v1")) -}}
{{- fail "certificates.mode is cert-manager, but this cluster does not serve the cert-manager.io/v1 API: install cert-manager v1.19.0 or later first (https://cert-manager.io/docs/installation/), or let the webhook manage its own certificates with --set certificates.mode=self-managed. (Rendering offline with helm template? Pass --api-versions cert-manager.io/v1.)" -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (lt (int .Values.replicaCount) (add 1 (int .Values.podDisruptionBudget.minAvailable) | int)) -}}
{{- fail (printf "replicaCount %d with podDisruptionBudget.minAvailable %d would block every drain of the webhook's nodes: run at least %d replicas, or set podDisruptionBudget.enabled=false" (int .Values.replicaCount) (int .Values.podDisruptionBudget.minAvailable) (add 1 (int .Values.podDisruptionBudget.minAvailable))) -}}
{{- end -}}
{{- end }}
