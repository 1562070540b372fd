# consul config write conf/consul/service-intentions-orders.hcl
# web may call orders; admin only GET/HEAD under /admin; everyone else falls to the default policy.
Kind = "service-intentions"
Name = "orders"
Sources = [
  {
    Name   = "web"
    Action = "allow"
  },
  {
    Name = "admin"
    Permissions = [
      {
        Action = "allow"
        HTTP = {
          PathPrefix = "/admin"
          Methods    = ["GET", "HEAD"]
        }
      }
    ]
  },
]
