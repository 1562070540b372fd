#!/usr/bin/env python3
"""moto's server, closer to AWS where the tests need it: its SigV4 check fixed, and Lambda's pages.

Usage: moto_server_aws.py -H 127.0.0.1 -p PORT   (the arguments of `moto_server`)

moto 5 rebuilds each request for botocore's signer from what it parsed, not from what was sent:
- the path comes from the decoded URL, so `/2017-03-31/tags/arn%3Aaws%3A...` (what the AWS SDKs send,
  signed as `arn%253Aaws...`) is checked as `arn:aws:...` and no correct signature matches;
- a request without a body is checked as if its query parameters (or, without a query, its headers)
  were a form body, so no GET passes.
Here the check takes the request target and the body bytes exactly as received (werkzeug's RAW_URI).

moto 5 also answers ListFunctions and ListAliases in one page whatever `MaxItems` says. Here a
`MaxItems` cuts the page and `NextMarker` continues it, as Lambda does; the marker is an opaque
base64 token (with `=`, so that a client must percent-encode it in the query and sign that).
Meant for loopback test servers only.
"""
import base64
import json
import sys
from urllib.parse import urlparse

from moto.awslambda.responses import LambdaResponse
from moto.core import authorization, responses
from moto.iam import access_control
from moto.server import main

# Fail loudly if a moto release renames what is patched, rather than silently checking nothing.
for owner, name in [(responses.BaseResponse, "setup_class"),
                    (authorization.ActionAuthenticatorMixin, "_authenticate_and_authorize_action"),
                    (access_control.IAMRequestBase, "_create_aws_request"),
                    (LambdaResponse, "list_functions"), (LambdaResponse, "list_aliases")]:
    assert hasattr(owner, name), f"moto has no {owner.__name__}.{name}: update {__file__}"

original_setup_class = responses.BaseResponse.setup_class


def setup_class(self, request, *args, **kwargs):
    original_setup_class(self, request, *args, **kwargs)
    environ = getattr(request, "environ", None) or {}
    self.exact_request_target = environ.get("RAW_URI")


original_authenticate = authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action


def authenticate(self, iam_request_cls, resource="*"):
    target = getattr(self, "exact_request_target", None)
    if not target:
        return original_authenticate(self, iam_request_cls, resource)
    # The original takes the path and query from `self.uri`; give it the target as sent.
    parsed = urlparse(target)
    decoded_uri = self.uri
    self.uri = f"http://exact{parsed.path}" + (f"?{parsed.query}" if parsed.query else "")
    try:
        return original_authenticate(self, iam_request_cls, resource)
    finally:
        self.uri = decoded_uri


def create_aws_request(self):
    request = original_create_aws_request(self)
    # The body as sent, empty when there was none (botocore hashes b"" then).
    request.data = self._body or b""
    return request


original_create_aws_request = access_control.IAMRequestBase._create_aws_request


def paged(original, items_key, name_key):
    """Cuts the original one-page answer at `MaxItems`, after the item the `Marker` names."""
    def handler(self):
        answer = original(self)
        status, headers, body = answer if isinstance(answer, tuple) else (200, {}, answer)
        limit = self.querystring.get("MaxItems", [None])[0]
        if limit is None:
            return answer
        result = json.loads(body)
        items = result[items_key]
        marker = self.querystring.get("Marker", [None])[0]
        if marker:
            after = json.loads(base64.b64decode(marker))["after"]
            names = [item[name_key] for item in items]
            items = items[names.index(after) + 1:] if after in names else []
        page, rest = items[:int(limit)], items[int(limit):]
        result[items_key] = page
        if rest:
            token = json.dumps({"after": page[-1][name_key]}).encode()
            while len(token) % 3 == 0:
                token += b" "  # so that the base64 text ends in "="
            result["NextMarker"] = base64.b64encode(token).decode()
        return status, headers, json.dumps(result)
    return handler


responses.BaseResponse.setup_class = setup_class
authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate
access_control.IAMRequestBase._create_aws_request = create_aws_request
LambdaResponse.list_functions = paged(LambdaResponse.list_functions, "Functions", "FunctionName")
LambdaResponse.list_aliases = paged(LambdaResponse.list_aliases, "Aliases", "Name")

if __name__ == "__main__":
    main(sys.argv[1:])
