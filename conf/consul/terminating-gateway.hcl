# consul config write conf/consul/terminating-gateway.hcl
# Links the Lambda services to the gateway. Every instance named lambda-gateway serves them.
Kind = "terminating-gateway"
Name = "lambda-gateway"
Services = [
  { Name = "orders" },
  { Name = "thumbnails" },
]
