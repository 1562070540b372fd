#!/usr/bin/env python3
"""Prepares a running moto server for the signature tests, then switches its IAM auth on.

Usage: moto_fixture.py http://127.0.0.1:PORT
Prints one JSON line: the function's name and ARN, long-term keys of an IAM user allowed to
invoke it, temporary keys (with a session token) of a role allowed to invoke it, keys of a
`registrator` user allowed the registrator's Lambda and SSM calls, keys of an `admin` user allowed
everything (for test setup once auth is on), and the role's ARN (for functions created later).
Only ever talks to the loopback endpoint it is given.
"""
import io
import json
import sys
import urllib.request
import zipfile

import boto3

endpoint = sys.argv[1]
assert endpoint.startswith("http://127.0.0.1:"), "moto must run on loopback"
region = "us-east-1"
admin = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id="admin", aws_secret_access_key="admin")


def post(path, body):
    request = urllib.request.Request(endpoint + path, data=body.encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request) as response:
        response.read()


# Invocations return a canned answer instead of starting a container.
post("/moto-api/config", json.dumps({"lambda": {"use_docker": False}}))

iam = boto3.client("iam", **admin)
# moto checks its own action name for Invoke ("lambda:Invoke"); the real one is lambda:InvokeFunction.
policy = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["lambda:InvokeFunction", "lambda:Invoke"], "Resource": "*"}]}
policy_arn = iam.create_policy(PolicyName="invoke", PolicyDocument=json.dumps(policy))["Policy"]["Arn"]

iam.create_user(UserName="gateway")
iam.attach_user_policy(UserName="gateway", PolicyArn=policy_arn)
iam.put_user_policy(UserName="gateway", PolicyName="assume", PolicyDocument=json.dumps({
    "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
user_key = iam.create_access_key(UserName="gateway")["AccessKey"]

trust = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
role = iam.create_role(RoleName="gateway-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
iam.attach_role_policy(RoleName="gateway-role", PolicyArn=policy_arn)

archive = io.BytesIO()
with zipfile.ZipFile(archive, "w") as zf:
    zf.writestr("index.py", "def handler(event, context):\n    return event\n")
function = boto3.client("lambda", **admin).create_function(
    FunctionName="orders", Runtime="python3.11", Role=role["Arn"], Handler="index.handler",
    Code={"ZipFile": archive.getvalue()})

# The registrator's calls (README.md, the registrator's IAM policy). moto checks "<service>:<operation>" with botocore's
# operation names, which for these seven are the real IAM action names.
registrator_policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
    "lambda:ListFunctions", "lambda:ListTags", "lambda:GetFunction", "lambda:ListAliases",
    "ssm:PutParameter", "ssm:GetParameter", "ssm:DeleteParameter"], "Resource": "*"}]}
iam.create_user(UserName="registrator")
iam.put_user_policy(UserName="registrator", PolicyName="registrator", PolicyDocument=json.dumps(registrator_policy))
registrator_key = iam.create_access_key(UserName="registrator")["AccessKey"]

# Test setup after auth is on (scripts/moto_functions.py): everything allowed.
iam.create_user(UserName="admin")
iam.put_user_policy(UserName="admin", PolicyName="everything", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
admin_key = iam.create_access_key(UserName="admin")["AccessKey"]

sts = boto3.client("sts", endpoint_url=endpoint, region_name=region,
                   aws_access_key_id=user_key["AccessKeyId"], aws_secret_access_key=user_key["SecretAccessKey"])
temporary = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="gateway-test")["Credentials"]

# From now on every request must be signed by a known key.
post("/moto-api/reset-auth", "0")

print(json.dumps({
    "function_name": function["FunctionName"],
    "function_arn": function["FunctionArn"],
    "user": {"access_key_id": user_key["AccessKeyId"], "secret_access_key": user_key["SecretAccessKey"]},
    "temporary": {"access_key_id": temporary["AccessKeyId"], "secret_access_key": temporary["SecretAccessKey"],
                  "session_token": temporary["SessionToken"]},
    "registrator": {"access_key_id": registrator_key["AccessKeyId"],
                    "secret_access_key": registrator_key["SecretAccessKey"]},
    "admin": {"access_key_id": admin_key["AccessKeyId"], "secret_access_key": admin_key["SecretAccessKey"]},
    "role_arn": role["Arn"],
}))
