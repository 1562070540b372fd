# lambda-gateway's registrator in place of consul-lambda-registrator, with HashiCorp's module.
# The module's own variables are unchanged; ecr_image_uri points at conf/registrator/Dockerfile's image.

module "lambda_registrator" {
  source                       = "github.com/hashicorp/terraform-aws-consul-lambda//modules/lambda-registrator"
  name                         = "lambda-registrator"
  ecr_image_uri                = var.registrator_image_uri # conf/registrator/Dockerfile, pushed to ECR
  enable_auto_publish_ecr_image = false
  consul_http_addr             = "https://consul.example.com:8501"
  consul_ca_cert_path          = "/consul/ca"
  consul_http_token_path       = "/consul/registrator-token"
  consul_extension_data_prefix = "/lambda_extension_data"
  sync_frequency_in_minutes    = 10
}

# The calls the module's policy lacks: tags and aliases are read with ListTags and ListAliases
# (not one GetFunction per function), and the mTLS data is read before it is rewritten (docs/DECISIONS.md D46).
resource "aws_iam_role_policy" "lambda_gateway_registrator" {
  name = "lambda-gateway-registrator"
  role = "lambda-registrator" # the module names its role after `name`
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["lambda:ListTags", "lambda:ListAliases"], Resource = "*" },
      { Effect = "Allow", Action = ["ssm:GetParameter"], Resource = "arn:aws:ssm:*:*:parameter/lambda_extension_data/*" },
    ]
  })
  depends_on = [module.lambda_registrator]
}

# Deleted functions are deregistered at once instead of at the next full sync: the module's rule
# does not list the delete events.
resource "aws_cloudwatch_event_rule" "lambda_deletes" {
  name = "lambda-registrator-deletes"
  event_pattern = jsonencode({
    source        = ["aws.lambda"]
    "detail-type" = ["AWS API Call via CloudTrail"]
    detail = {
      eventSource = ["lambda.amazonaws.com"]
      eventName   = ["DeleteFunction20150331", "DeleteFunction"]
    }
  })
}

resource "aws_cloudwatch_event_target" "lambda_deletes" {
  rule = aws_cloudwatch_event_rule.lambda_deletes.name
  arn  = "arn:aws:lambda:${var.region}:${var.account_id}:function:lambda-registrator"
}

resource "aws_lambda_permission" "lambda_deletes" {
  action        = "lambda:InvokeFunction"
  function_name = "lambda-registrator"
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.lambda_deletes.arn
}

variable "registrator_image_uri" { type = string }
variable "region" { type = string }
variable "account_id" { type = string }
