{{/* Names. */}}
{{- define "exo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "exo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The name of a component's resources: (dict "root" $ "component" "processor").
At most 41 + 1 + 12 characters: a Service name stays a DNS label (63), and
the processor StatefulSet's name stays within 52, which its pods' label
controller-revision-hash (<name>-<hash>) needs.
*/}}
{{- define "exo.componentName" -}}
{{- printf "%s-%s" (include "exo.fullname" .root | trunc 41 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "exo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "exo.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "exo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "exo.selectorLabels" . }}
app.kubernetes.io/part-of: exo-alerts
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{- define "exo.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "exo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "exo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret the chart creates for the values given inline. */}}
{{- define "exo.secretName" -}}
{{- include "exo.fullname" . -}}
{{- end -}}

{{- define "exo.databaseSecretName" -}}
{{- default (include "exo.secretName" .) .Values.database.existingSecret -}}
{{- end -}}

{{- define "exo.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecretKey }}{{- else -}}DATABASE_URL{{- end -}}
{{- end -}}

{{- define "exo.keyringSecretName" -}}
{{- default (include "exo.secretName" .) .Values.keyring.existingSecret -}}
{{- end -}}

{{- define "exo.keyringSecretKey" -}}
{{- if .Values.keyring.existingSecret -}}{{ .Values.keyring.existingSecretKey }}{{- else -}}EXO_KEYRING{{- end -}}
{{- end -}}

{{/* Whether the chart creates its Secret: some secret value is inline. */}}
{{- define "exo.createSecret" -}}
{{- $v := .Values -}}
{{- if or (not $v.database.existingSecret) (not $v.keyring.existingSecret) (and $v.kafka.sasl.mechanism (not $v.kafka.sasl.existingSecret)) -}}true{{- end -}}
{{- end -}}

{{/* env: DATABASE_URL from its Secret. */}}
{{- define "exo.env.database" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "exo.databaseSecretName" . }}
      key: {{ include "exo.databaseSecretKey" . }}
{{- end -}}

{{/* env: EXO_KEYRING from its Secret. */}}
{{- define "exo.env.keyring" -}}
- name: EXO_KEYRING
  valueFrom:
    secretKeyRef:
      name: {{ include "exo.keyringSecretName" . }}
      key: {{ include "exo.keyringSecretKey" . }}
{{- end -}}

{{/* env every component shares: log level. */}}
{{- define "exo.env.common" -}}
- name: EXO_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end -}}

{{/* env: the SSRF allowlist (controlplane, dispatcher). */}}
{{- define "exo.env.allowlist" -}}
{{- with .Values.ssrfAllowlist }}
- name: EXO_SSRF_ALLOWLIST
  value: {{ join "," . | quote }}
{{- end }}
{{- end -}}

{{/* env: the delivery quotas (processor, controlplane: from one value, so
the caps the processor enforces are the ones the control plane reports). */}}
{{- define "exo.env.quota" -}}
{{- $q := .Values.quota }}
{{- if gt (int64 $q.tenantPerMinute) 0 }}
- name: EXO_TENANT_DELIVERY_QUOTA
  value: {{ int64 $q.tenantPerMinute | quote }}
{{- end }}
{{- if gt (int64 $q.globalPerMinute) 0 }}
- name: EXO_GLOBAL_DELIVERY_QUOTA
  value: {{ int64 $q.globalPerMinute | quote }}
{{- end }}
{{- end -}}

{{/* env: Kafka brokers, topics, TLS and SASL. */}}
{{- define "exo.env.kafka" -}}
{{- $k := .Values.kafka -}}
- name: KAFKA_BROKERS
  value: {{ join "," $k.brokers | quote }}
- name: EXO_TOPIC_PREFIX
  value: {{ .Values.topics.prefix | quote }}
- name: EXO_PARTITIONS
  value: {{ .Values.topics.partitions | quote }}
{{- if $k.tls.enabled }}
- name: EXO_KAFKA_TLS
  value: "on"
{{- with $k.tls.serverName }}
- name: EXO_KAFKA_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- if $k.tls.existingSecret }}
{{- with $k.tls.caKey }}
- name: EXO_KAFKA_TLS_CA_FILE
  value: {{ printf "/etc/exo-alerts/kafka-tls/%s" . | quote }}
{{- end }}
{{- if and $k.tls.certKey $k.tls.keyKey }}
- name: EXO_KAFKA_TLS_CERT_FILE
  value: {{ printf "/etc/exo-alerts/kafka-tls/%s" $k.tls.certKey | quote }}
- name: EXO_KAFKA_TLS_KEY_FILE
  value: {{ printf "/etc/exo-alerts/kafka-tls/%s" $k.tls.keyKey | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if $k.sasl.mechanism }}
- name: EXO_KAFKA_SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
- name: EXO_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ default (include "exo.secretName" .) $k.sasl.existingSecret }}
      key: {{ if $k.sasl.existingSecret }}{{ $k.sasl.usernameKey }}{{ else }}EXO_KAFKA_SASL_USERNAME{{ end }}
- name: EXO_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (include "exo.secretName" .) $k.sasl.existingSecret }}
      key: {{ if $k.sasl.existingSecret }}{{ $k.sasl.passwordKey }}{{ else }}EXO_KAFKA_SASL_PASSWORD{{ end }}
{{- end }}
{{- end -}}

{{/* env: a component's extra variables, a map NAME: value. */}}
{{- define "exo.env.extra" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* An httpGet probe: (dict "path" "/healthz" "port" "http" "p" .Values.x.livenessProbe). */}}
{{- define "exo.probe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{- toYaml .p | nindent 0 }}
{{- end -}}

{{/*
The pod spec parts every component shares:
(dict "root" $ "c" .Values.processor "component" "processor").
*/}}
{{- define "exo.podCommon" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "exo.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .c.terminationGracePeriodSeconds }}
{{- with (default $root.Values.nodeSelector .c.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.tolerations .c.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.affinity .c.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod template metadata: (dict "root" $ "c" .Values.x "component" "x"). */}}
{{- define "exo.podMetadata" -}}
labels:
  {{- include "exo.selectorLabels" . | nindent 2 }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/secret: {{ include (print .root.Template.BasePath "/secret.yaml") .root | sha256sum }}
  {{- with .root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .c.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* The PodDisruptionBudget of a component. */}}
{{- define "exo.pdb" -}}
{{- if .c.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "exo.componentName" . }}
  labels:
    {{- include "exo.labels" . | nindent 4 }}
spec:
  {{- if hasKey .c.pdb "minAvailable" }}
  minAvailable: {{ .c.pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .c.pdb.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "exo.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* The HorizontalPodAutoscaler of a stateless component. */}}
{{- define "exo.hpa" -}}
{{- if .c.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "exo.componentName" . }}
  labels:
    {{- include "exo.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "exo.componentName" . }}
  minReplicas: {{ .c.autoscaling.minReplicas }}
  maxReplicas: {{ .c.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .c.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end -}}

{{/* The Service of a component: (dict ... "port" 9101 "portName" "metrics" "headless" false). */}}
{{- define "exo.service" -}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "exo.componentName" . }}
  labels:
    {{- include "exo.labels" . | nindent 4 }}
spec:
  {{- if .headless }}
  clusterIP: None
  {{- end }}
  selector:
    {{- include "exo.selectorLabels" . | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ .port }}
      targetPort: {{ .portName }}
      protocol: TCP
{{- end -}}

{{/* A pod's volumes: the Kafka TLS Secret (unless noKafka) and extraVolumes. (dict "Values" .Values "noKafka" false) */}}
{{- define "exo.volumes" -}}
{{- $kafka := and .Values.kafka.tls.enabled .Values.kafka.tls.existingSecret (not .noKafka) -}}
{{- if or $kafka .Values.extraVolumes }}
volumes:
  {{- if $kafka }}
  - name: kafka-tls
    secret:
      secretName: {{ .Values.kafka.tls.existingSecret }}
      defaultMode: 0440
  {{- end }}
  {{- with .Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* A container's volume mounts, to match exo.volumes. */}}
{{- define "exo.volumeMounts" -}}
{{- $kafka := and .Values.kafka.tls.enabled .Values.kafka.tls.existingSecret (not .noKafka) -}}
{{- if or $kafka .Values.extraVolumeMounts }}
volumeMounts:
  {{- if $kafka }}
  - name: kafka-tls
    mountPath: /etc/exo-alerts/kafka-tls
    readOnly: true
  {{- end }}
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end -}}
