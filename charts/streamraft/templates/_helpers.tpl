{{/* Chart name, truncated to the 63 characters Kubernetes allows in names and labels. */}}
{{- define "streamraft.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified operator name: <release>-streamraft-operator unless the release name holds the chart name. */}}
{{- define "streamraft.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s-operator" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "streamraft.selectorLabels" -}}
app.kubernetes.io/name: streamraft-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streamraft.labels" -}}
{{ include "streamraft.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "streamraft.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "streamraft.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "streamraft.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Bootstrap address of the helm test: pod IPs through the headless Service, never a ClusterIP. */}}
{{- define "streamraft.testBootstrap" -}}
{{- if .Values.tests.bootstrap -}}
{{- .Values.tests.bootstrap -}}
{{- else -}}
{{- printf "%s-headless.%s.svc.cluster.local:9092" .Values.exampleCluster.name .Release.Namespace -}}
{{- end -}}
{{- end -}}
