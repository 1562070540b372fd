#!/usr/bin/env python3
"""Applies Lambda set-up commands to a running moto server prepared by moto_fixture.py.

Usage: moto_functions.py http://127.0.0.1:PORT < commands.json
The admin keys and the execution role come from the environment: MOTO_ADMIN_ACCESS_KEY_ID,
MOTO_ADMIN_SECRET_ACCESS_KEY (the fixture's `admin` keys: IAM auth is on by then) and MOTO_ROLE_ARN.

Standard input: a JSON list of commands, applied in order:
  {"op": "create", "name": "f", "tags": {"k": "v"}}    a python3.11 function (tags optional)
  {"op": "tag", "name": "f", "tags": {"k": "v"}}
  {"op": "untag", "name": "f", "keys": ["k"]}
  {"op": "alias", "name": "f", "alias": "prod"}         publishes a version first
  {"op": "delete", "name": "f"}
Prints one JSON object: {"arns": {"<name>": "<function ARN>", ...}} for the functions created,
and {"aliases": {"<name>:<alias>": "<alias ARN>"}} for the aliases.
Only ever talks to the loopback endpoint it is given.
"""
import io
import json
import os
import sys
import zipfile

import boto3

endpoint = sys.argv[1]
assert endpoint.startswith("http://127.0.0.1:"), "moto must run on loopback"
client = boto3.client(
    "lambda", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id=os.environ["MOTO_ADMIN_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["MOTO_ADMIN_SECRET_ACCESS_KEY"])

archive = io.BytesIO()
with zipfile.ZipFile(archive, "w") as zf:
    zf.writestr("index.py", "def handler(event, context):\n    return event\n")
code = archive.getvalue()

arns = {}
aliases = {}


def arn_of(name):
    # Tag calls take the function's ARN, not its name.
    if name not in arns:
        arns[name] = client.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    return arns[name]


for command in json.load(sys.stdin):
    op, name = command["op"], command["name"]
    if op == "create":
        created = client.create_function(
            FunctionName=name, Runtime="python3.11", Role=os.environ["MOTO_ROLE_ARN"],
            Handler="index.handler", Code={"ZipFile": code}, Tags=command.get("tags", {}))
        arns[name] = created["FunctionArn"]
    elif op == "tag":
        client.tag_resource(Resource=arn_of(name), Tags=command["tags"])
    elif op == "untag":
        client.untag_resource(Resource=arn_of(name), TagKeys=command["keys"])
    elif op == "alias":
        version = client.publish_version(FunctionName=name)["Version"]
        alias = client.create_alias(FunctionName=name, Name=command["alias"], FunctionVersion=version)
        aliases[f"{name}:{command['alias']}"] = alias["AliasArn"]
    elif op == "delete":
        client.delete_function(FunctionName=name)
        arns.pop(name, None)
    else:
        raise SystemExit(f"unknown op {op!r}")

print(json.dumps({"arns": arns, "aliases": aliases}))
