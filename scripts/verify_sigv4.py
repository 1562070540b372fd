#!/usr/bin/env python3
"""Recomputes a recorded request's SigV4 signature with botocore (an implementation that is not the
project's own) and prints "ok" when it matches the Authorization header the gateway sent.

Input on stdin, one JSON object: method, url, headers (list of [name, value]), body_base64,
access_key_id, secret_access_key, session_token (optional), region, service.
"""
import base64
import datetime
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

request = json.load(sys.stdin)
headers = {name: value for name, value in request["headers"]}
sent = headers.pop("authorization", None) or headers.pop("Authorization", None)
lower = {name.lower(): value for name, value in headers.items()}
amz_date = lower["x-amz-date"]
# Sign exactly the headers the gateway signed (botocore would add its own otherwise).
signed_names = sent.split("SignedHeaders=")[1].split(",")[0].split(";")
# botocore adds x-amz-date (and the session token) itself, from the time and the credentials.
to_sign = {name: lower[name] for name in signed_names if name not in ("x-amz-date", "x-amz-security-token")}

aws_request = AWSRequest(method=request["method"], url=request["url"], data=base64.b64decode(request["body_base64"]), headers=to_sign)
credentials = Credentials(request["access_key_id"], request["secret_access_key"], request.get("session_token"))
signer = SigV4Auth(credentials, request["service"], request["region"])
# Sign at the recorded time.
import botocore.auth
fixed = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
botocore.auth.get_current_datetime = lambda *args, **kwargs: fixed
aws_request.headers = to_sign.copy()
signer.add_auth(aws_request)
computed = aws_request.headers["Authorization"]
if computed == sent:
    print("ok")
else:
    print("mismatch\nsent:     %s\ncomputed: %s" % (sent, computed))
    sys.exit(1)
