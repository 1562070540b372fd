# consul config write conf/consul/service-defaults-orders.hcl
# The current form: Consul's builtin/aws/lambda Envoy extension (what Envoy reads, and this gateway too).
Kind     = "service-defaults"
Name     = "orders"
Protocol = "http"
EnvoyExtensions = [
  {
    Name     = "builtin/aws/lambda"
    Required = false
    Arguments = {
      ARN                = "arn:aws:lambda:us-east-1:123456789012:function:orders"
      PayloadPassthrough = false
      InvocationMode     = "synchronous"
    }
  }
]
