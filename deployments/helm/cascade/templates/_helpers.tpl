{{/* Labels every object of the release carries. */}}
{{- define "cascade.labels" -}}
app.kubernetes.io/part-of: cascade
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The image of both programs. */}}
{{- define "cascade.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The driver name, checked: it is a DNS subdomain that names everything Cascade writes. */}}
{{- define "cascade.driver" -}}
{{- $d := .Values.driverName -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" $d) -}}
{{- fail (printf "driverName %q is not a DNS subdomain (lower-case letters, digits, '-' and '.')" $d) -}}
{{- end -}}
{{- if gt (len $d) 63 -}}
{{- fail (printf "driverName %q is longer than 63 characters" $d) -}}
{{- end -}}
{{- $d -}}
{{- end -}}

{{/* The service account user name of a component. */}}
{{- define "cascade.saUser" -}}
system:serviceaccount:{{ .root.Release.Namespace }}:{{ .name }}
{{- end -}}
