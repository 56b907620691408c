{{/*
The refresher's service account and what it may do: create Secrets, and read or change only the pull secret.
Two sets: the CronJob's, part of the release; and the first Job's, a hook like the Job (before the release's
objects, removed once it has run), so nothing is left behind when the refresher is turned off.
*/}}
{{- define "wasmgate.pullSecretAccess" -}}
{{- $v := .root.Values -}}
{{- $secret := required "pullSecretRefresher.enabled needs images.pullSecret: the Secret it keeps fresh" $v.images.pullSecret -}}
{{- $meta := dict "name" .name "namespace" $v.istio.namespace -}}
{{- $hook := .hook -}}
{{- range $kind := list "ServiceAccount" "Role" "RoleBinding" }}
---
apiVersion: {{ ternary "v1" "rbac.authorization.k8s.io/v1" (eq $kind "ServiceAccount") }}
kind: {{ $kind }}
metadata:
  name: {{ $meta.name }}
  namespace: {{ $meta.namespace }}
  labels:
    {{- include "wasmgate.labels" $.root | nindent 4 }}
  {{- $irsa := and (eq $kind "ServiceAccount") $v.pullSecretRefresher.roleArn }}
  {{- if or $hook $irsa }}
  annotations:
    {{- if $hook }}
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
    {{- end }}
    {{- with $irsa }}
    # IRSA: the token command runs as this IAM role (ecr:GetAuthorizationToken).
    eks.amazonaws.com/role-arn: {{ . }}
    {{- end }}
  {{- end }}
{{- if eq $kind "Role" }}
rules:
  - apiGroups: [""]
    resources: [secrets]
    verbs: [create]
  - apiGroups: [""]
    resources: [secrets]
    resourceNames: [{{ $secret }}]
    verbs: [get, patch, update]
{{- else if eq $kind "RoleBinding" }}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: {{ $meta.name }}}
subjects:
  - {kind: ServiceAccount, name: {{ $meta.name }}, namespace: {{ $meta.namespace }}}
{{- end }}
{{- end }}
{{- end }}
