{{/* Labels on every object the chart makes. */}}
{{- define "wasmgate.labels" -}}
app.kubernetes.io/part-of: wasmgate
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The model server's FQDN, as the VirtualService and DestinationRule name it. */}}
{{- define "wasmgate.modelHost" -}}
inference.{{ .Values.modelNamespace.name }}.svc.cluster.local
{{- end }}

{{/*
One WasmPlugin. Called with a dict: root (the chart's context), name, image (the catalogue's image name), phase
(or ""), config (the pluginConfig) and why (the comment above the object).
*/}}
{{- define "wasmgate.wasmPlugin" -}}
{{- $v := .root.Values -}}
{{- $digest := get $v.images.digests .image -}}
# {{ .why }}
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: {{ .name }}
  namespace: {{ $v.istio.namespace }}
  labels:
    {{- include "wasmgate.labels" .root | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- toYaml $v.istio.gatewaySelector | nindent 6 }}
  # Only the listener behind the Gateway's 443 server (values: gateway.pluginPort says why).
  match:
    - ports: [{number: {{ $v.gateway.pluginPort }}}]
  url: oci://{{ $v.images.registry }}/{{ .image }}:{{ $v.images.tag }}
  {{- with $digest }}
  sha256: {{ . | quote }}
  {{- end }}
  imagePullPolicy: {{ $v.images.pullPolicy }}
  {{- with $v.images.pullSecret }}
  imagePullSecret: {{ . }}
  {{- end }}
  {{- with .phase }}
  phase: {{ . }}
  {{- end }}
  pluginName: {{ .name }}
  # A plugin that authenticates must never fail open: FAIL_OPEN would skip it after a VM failure.
  failStrategy: FAIL_CLOSE
  pluginConfig:
    {{- toYaml .config | nindent 4 }}
{{- end }}
