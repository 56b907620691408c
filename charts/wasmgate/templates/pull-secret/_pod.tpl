{{/*
The refresher's pod: the token container prints the registry password into a memory-backed volume, the next
writes the Secret from it (kubectl apply: created the first time, replaced after). The password never reaches a
log or the pod's spec.
*/}}
{{- define "wasmgate.pullSecretPod" -}}
{{- $r := .root.Values.pullSecretRefresher -}}
{{- $v := .root.Values -}}
metadata:
  labels:
    {{- include "wasmgate.labels" .root | nindent 4 }}
    app.kubernetes.io/component: pull-secret-refresher
    # Not in the mesh: no sidecar to keep the Job from finishing.
    sidecar.istio.io/inject: "false"
spec:
  serviceAccountName: {{ .serviceAccount }}
  restartPolicy: OnFailure
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile: {type: RuntimeDefault}
  volumes:
    - name: token
      emptyDir: {medium: Memory, sizeLimit: 1Mi}
    # The commands' caches and config (aws, kubectl): the root filesystem is read-only.
    - name: home
      emptyDir: {sizeLimit: 64Mi}
  initContainers:
    - name: token
      image: {{ $r.token.image }}
      command: ["/bin/sh", "-c", 'umask 077 && "$@" > /token/password', "token"]
      args: {{ toJson $r.token.command }}
      env:
        - {name: HOME, value: /home/refresher}
      volumeMounts:
        - {name: token, mountPath: /token}
        - {name: home, mountPath: /home/refresher}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
  containers:
    - name: secret
      image: {{ $r.kubectlImage }}
      command:
        - /bin/sh
        - -c
        - >-
          kubectl create secret docker-registry "$SECRET" --namespace "$NAMESPACE" --docker-server "$SERVER"
          --docker-username "$USERNAME" --docker-password "$(cat /token/password)" --dry-run=client -o yaml
          | kubectl apply --server-side --force-conflicts --field-manager wasmgate-pull-secret-refresher -f -
      env:
        - {name: SECRET, value: {{ $v.images.pullSecret | quote }}}
        - {name: NAMESPACE, value: {{ $v.istio.namespace | quote }}}
        - {name: SERVER, value: {{ required "pullSecretRefresher.server: the registry host the secret is for" $r.server | quote }}}
        - {name: USERNAME, value: {{ $r.username | quote }}}
        - {name: HOME, value: /home/refresher}
      volumeMounts:
        - {name: token, mountPath: /token, readOnly: true}
        - {name: home, mountPath: /home/refresher}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
{{- end }}
