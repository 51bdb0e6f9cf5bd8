{{/* Names, labels and the pod parts every workload shares (image, env, restricted security, volumes). */}}

{{- define "controlplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "controlplane.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "controlplane.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "controlplane.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "controlplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "controlplane.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "controlplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "controlplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "controlplane.labels" -}}
{{ include "controlplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "controlplane.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The restricted Pod Security Standard: the image's non-root user (uid 1000 in the Dockerfile). */}}
{{- define "controlplane.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "controlplane.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Settings every process reads; credentials only by reference to existingSecret. */}}
{{- define "controlplane.env" -}}
- name: CONTROLPLANE_ENV
  value: production
- name: CONTROLPLANE_DATA_DIR
  value: /app/var
# The root filesystem is read-only: caches and home-directory writes go to the /tmp emptyDir.
- name: HOME
  value: /tmp
# The kubelet's probes and Prometheus reach a pod at its own address (Host: <pod IP>:8000), which Django
# must allow or it answers 400; $(POD_IP) is expanded by the kubelet from the variable above it.
- name: POD_IP
  valueFrom:
    fieldRef: {fieldPath: status.podIP}
- name: DJANGO_ALLOWED_HOSTS
  value: {{ printf "%s,$(POD_IP)" (join "," .Values.config.allowedHosts) | quote }}
- name: DJANGO_CSRF_TRUSTED_ORIGINS
  value: {{ join "," .Values.config.csrfTrustedOrigins | quote }}
- name: DJANGO_SECURE_PROXY_SSL_HEADER
  value: {{ .Values.config.proxySslHeader | quote }}
- name: TRUSTED_PROXIES
  value: {{ join "," .Values.config.trustedProxies | quote }}
- name: SSRF_ALLOWED_CIDRS
  value: {{ join "," .Values.config.ssrfAllowedCidrs | quote }}
- name: LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: DEPLOYMENTS_SERVER_IMAGE
  value: {{ .Values.config.modelServerImage | quote }}
{{- $required := list "DJANGO_SECRET_KEY" "CONTROLPLANE_FERNET_KEYS" "AUDIT_HMAC_KEYS" "AUDIT_SIGNING_KEY" "DATABASE_URL" "REDIS_URL" }}
{{- /* The ServiceMonitor scrapes with METRICS_TOKEN: without it every scrape would be refused. */}}
{{- if .Values.serviceMonitor.enabled }}{{ $required = append $required "METRICS_TOKEN" }}{{ end }}
{{- range $name := $required }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef: {name: {{ $.Values.existingSecret }}, key: {{ $name }}}
{{- end }}
- name: MLFLOW_TRACKING_URI
{{- if .Values.mlflow.trackingUri }}
  value: {{ .Values.mlflow.trackingUri | quote }}
{{- else }}
  valueFrom:
    secretKeyRef: {name: {{ .Values.existingSecret }}, key: MLFLOW_TRACKING_URI}
{{- end }}
{{- range $name := concat (list "METRICS_TOKEN" "REGISTRY_SIGNING_KEY" "MLFLOW_WEBHOOK_SECRET" "OIDC_CLIENT_SECRET" "CELERY_BROKER_URL" "CACHE_URL" "MONITORING_LOG_S3_ACCESS_KEY" "MONITORING_LOG_S3_SECRET_KEY") .Values.extraSecretKeys | uniq }}
{{- if not (has $name $required) }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef: {name: {{ $.Values.existingSecret }}, key: {{ $name }}, optional: true}
{{- end }}
{{- end }}
{{- range $name, $value := .Values.config.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "controlplane.volumes" -}}
- name: tmp
  emptyDir: {}
- name: data
{{- if .Values.dataVolume.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.dataVolume.existingClaim }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}

{{- define "controlplane.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /app/var
{{- end -}}

{{/* The pod-level part every workload shares. */}}
{{- define "controlplane.podSpecCommon" -}}
serviceAccountName: {{ include "controlplane.serviceAccountName" . }}
# The driver's token is registered as cluster credentials in the database; no pod needs it mounted.
automountServiceAccountToken: false
securityContext:
  {{- include "controlplane.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  {{- include "controlplane.volumes" . | nindent 2 }}
{{- end -}}

{{/* Holds a pod back until the migration hook has applied every migration of this image. */}}
{{- define "controlplane.waitForMigrations" -}}
- name: wait-for-migrations
  image: {{ include "controlplane.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: [sh, -c, "until python manage.py migrate --check >/dev/null; do echo 'waiting for migrations'; sleep 5; done"]
  env:
    {{- include "controlplane.env" . | nindent 4 }}
  resources:
    {{- toYaml .Values.migrations.resources | nindent 4 }}
  securityContext:
    {{- include "controlplane.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    {{- include "controlplane.volumeMounts" . | nindent 4 }}
{{- end -}}

{{/* What values.schema.json cannot say: relations between values. */}}
{{- define "controlplane.checks" -}}
{{- $scaled := dict "web" .Values.web.autoscaling -}}
{{- range $queue, $worker := .Values.workers }}{{ $_ := set $scaled (printf "workers.%s" $queue) $worker.autoscaling }}{{ end -}}
{{- range $where, $hpa := $scaled }}
{{- if and $hpa.enabled (gt (int $hpa.minReplicas) (int $hpa.maxReplicas)) }}
{{- fail (printf "%s.autoscaling: minReplicas (%v) is above maxReplicas (%v)" $where $hpa.minReplicas $hpa.maxReplicas) }}
{{- end }}
{{- end }}
{{- end -}}
