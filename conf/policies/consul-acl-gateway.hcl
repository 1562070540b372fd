# consul acl policy create -name lambda-gateway -rules @conf/policies/consul-acl-gateway.hcl
# The token `lambda-gateway run --gateway-name lambda-gateway` needs (docs/COMPATIBILITY.md, The Consul agent and the gateway's registration).

# Self-registration (--register agent) and /v1/catalog/gateway-services/lambda-gateway.
service "lambda-gateway" {
  policy = "write"
}

# One per linked service: its leaf certificate, its config entries, its intentions.
# With wildcard linking (Services = [{Name = "*"}]) use service_prefix "" { policy = "write" }.
service "orders" {
  policy = "write"
}
service "thumbnails" {
  policy = "write"
}

# Catalog and health reads.
node_prefix "" {
  policy = "read"
}

# Optional: /v1/agent/self, one source of the default intention policy.
agent_prefix "" {
  policy = "read"
}

# Reading proxy-defaults and mesh needs no rule. Writing the terminating-gateway entry
# (operator:write) is an operator's task, not the gateway's.
