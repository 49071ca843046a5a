{{/* The image of both the controller and the gateway. */}}
{{- define "switchyard.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "switchyard.labels" -}}
app.kubernetes.io/part-of: switchyard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Whether the gateway is installed: as asked, else in gateway mode. */}}
{{- define "switchyard.gatewayEnabled" -}}
{{- if kindIs "invalid" .Values.gateway.enabled -}}
{{- if eq .Values.mode "gateway" }}true{{ end -}}
{{- else if .Values.gateway.enabled -}}
true
{{- end -}}
{{- end -}}

{{/* The container security context both parts run with. */}}
{{- define "switchyard.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{- define "switchyard.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* A pod's annotations: the token JWKS checksum (a new key set rolls the pods) and the values'. */}}
{{- define "switchyard.podAnnotations" -}}
{{- $a := dict -}}
{{- if .root.Values.tokenJwks -}}{{- $_ := set $a "checksum/token-jwks" (.root.Values.tokenJwks | sha256sum) -}}{{- end -}}
{{- range $k, $v := .extra -}}{{- $_ := set $a $k $v -}}{{- end -}}
{{- if $a -}}
annotations: {{- toYaml $a | nindent 2 }}
{{- end -}}
{{- end -}}

{{/*
Rules given to one of the chart's ServiceAccounts: a ClusterRole and its ClusterRoleBinding, or,
when the controller watches only some namespaces (controller.namespaces), a Role and RoleBinding
of the same name and rules in each of them. Call with (dict "root" . "name" <role> "account"
<ServiceAccount> "rules" <the rules' template> "clusterWide" <true for cluster-scoped kinds>).
*/}}
{{- define "switchyard.grant" -}}
{{- $root := .root -}}
{{- $scoped := and (gt (len $root.Values.controller.namespaces) 0) (not .clusterWide) -}}
{{- range (ternary $root.Values.controller.namespaces (list "") $scoped) }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ ternary "Role" "ClusterRole" $scoped }}
metadata:
  name: {{ $.name }}
  {{- if $scoped }}
  namespace: {{ . | quote }}
  {{- end }}
  labels: {{- include "switchyard.labels" $root | nindent 4 }}
rules: {{- include $.rules $root | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ ternary "RoleBinding" "ClusterRoleBinding" $scoped }}
metadata:
  name: {{ $.name }}
  {{- if $scoped }}
  namespace: {{ . | quote }}
  {{- end }}
  labels: {{- include "switchyard.labels" $root | nindent 4 }}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: {{ ternary "Role" "ClusterRole" $scoped }}, name: {{ $.name }}}
subjects:
  - {kind: ServiceAccount, name: {{ $.account }}, namespace: {{ $root.Release.Namespace }}}
{{- end }}
{{- end -}}
