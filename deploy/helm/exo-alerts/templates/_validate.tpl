{{/* Refuse combinations of values that cannot work, with the value to fix. */}}
{{- define "exo.validate" -}}
{{- $k := .Values.kafka -}}
{{- if and $k.sasl.mechanism (not $k.sasl.existingSecret) (or (not $k.sasl.username) (not $k.sasl.password)) -}}
{{- fail "kafka.sasl.mechanism is set: give kafka.sasl.username and kafka.sasl.password, or kafka.sasl.existingSecret" -}}
{{- end -}}
{{- if or (and $k.tls.certKey (not $k.tls.keyKey)) (and $k.tls.keyKey (not $k.tls.certKey)) -}}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey go together (the client certificate and its key)" -}}
{{- end -}}
{{- if and (not $k.tls.enabled) $k.tls.existingSecret -}}
{{- fail "kafka.tls.existingSecret is set but kafka.tls.enabled is false" -}}
{{- end -}}
{{- range $c := list "controlplane" "processor" "dispatcher" "recorder" -}}
{{- range $v := list "EXO_TENANT_DELIVERY_QUOTA" "EXO_GLOBAL_DELIVERY_QUOTA" -}}
{{- if hasKey (index $.Values $c).env $v -}}
{{- fail (printf "%s.env sets %s: set quota.tenantPerMinute and quota.globalPerMinute instead, which the processor and the control plane both get" $c $v) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $c := list "controlplane" "dispatcher" -}}
{{- $a := (index $.Values $c).autoscaling -}}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) -}}
{{- fail (printf "%s.autoscaling.minReplicas is above its maxReplicas" $c) -}}
{{- end -}}
{{- end -}}
{{- end -}}
