# consul config write conf/consul/service-defaults-thumbnails-legacy.hcl
# The legacy form that consul-lambda-registrator writes: Meta keys instead of the extension.
# "lambda-gateway/payload-format" is this gateway's own key (envoy | apigateway-v2).
Kind     = "service-defaults"
Name     = "thumbnails"
Protocol = "http"
Meta = {
  "serverless.consul.hashicorp.com/v1alpha1/lambda/enabled"             = "true"
  "serverless.consul.hashicorp.com/v1alpha1/lambda/arn"                 = "arn:aws:lambda:us-east-1:123456789012:function:thumbnails:live"
  "serverless.consul.hashicorp.com/v1alpha1/lambda/payload-passthrough" = "false"
  "serverless.consul.hashicorp.com/v1alpha1/lambda/invocation-mode"     = "synchronous"
  "lambda-gateway/payload-format"                                       = "apigateway-v2"
}
