#!/usr/bin/env python3
"""Helpers of Benchmarks/soak.sh (standard library only): the Consul API calls it makes, the mesh
identity a caller presents, and the abusive clients. Each client runs until --until (epoch seconds),
bounded in count, and prints one JSON line of what it saw.

    soak_helpers.py consul-setup   --consul URL --stable A,B --bulk S --churn C1,C2 --arn-prefix P
    soak_helpers.py identity       --consul URL --dir D [--bundle-only]
    soak_helpers.py wait-applied   --consul URL --admin URL --roots N --services A,B [--timeout S]
    soak_helpers.py churn          --consul URL --until T --stable A,B --bulk S --churn C1,C2 ...
    soak_helpers.py stall          --port P --sni S --dir D --until T --timeout S --workers N
    soak_helpers.py h2-noread      --port P --sni S --dir D --until T --timeout S --admin URL
    soak_helpers.py refused        --port P --sni S --unknown-sni U --dir D --until T
"""
import argparse
import json
import os
import random
import re
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.request

GATEWAY = "lambda-gateway"


# MARK: Consul API (the gateway reads what these write through its own watches)

def consul(url, method="GET", body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answer.read().decode()


def service_defaults(name, arn, meta=None, payload_format=None, protocol="http2"):
    """http2: the gateway offers h2 and http/1.1 by ALPN (http: HTTP/1.1 only)."""
    arguments = {"ARN": arn}
    if payload_format:
        arguments["PayloadFormat"] = payload_format
    entry = {"Kind": "service-defaults", "Name": name, "Protocol": protocol,
             "EnvoyExtensions": [{"Name": "builtin/aws/lambda", "Arguments": arguments}]}
    if meta:
        entry["Meta"] = meta
    return entry


def register_instance(base, name):
    consul(f"{base}/v1/catalog/register", "PUT", {
        "Node": "lambdas", "Address": "lambda.invalid", "NodeMeta": {"external-node": "true", "external-probe": "true"},
        "Service": {"ID": name, "Service": name, "Tags": ["managed-by-lambda-registrator"]}})


def deregister_instance(base, name):
    consul(f"{base}/v1/catalog/deregister", "PUT", {"Node": "lambdas", "ServiceID": name})


def link(base, names):
    consul(f"{base}/v1/config", "PUT", {"Kind": "terminating-gateway", "Name": GATEWAY, "Services": [{"Name": n} for n in names]})


def consul_setup(args):
    for name in args.stable + [args.bulk] + args.churn:
        consul(f"{args.consul}/v1/config", "PUT", service_defaults(name, args.arn_prefix + name))
        consul(f"{args.consul}/v1/config", "PUT", {"Kind": "service-intentions", "Name": name,
                                                    "Sources": [{"Name": "web", "Action": "allow"}, {"Name": "*", "Action": "deny"}]})
        register_instance(args.consul, name)
    link(args.consul, args.stable + [args.bulk] + args.churn[: len(args.churn) // 2])


def write_atomically(path, text):
    with open(path + ".tmp", "w") as file:
        file.write(text)
    os.replace(path + ".tmp", path)


def identity(args):
    """What a sidecar holds: the roots bundle (every root Consul lists) and its own leaf."""
    os.makedirs(args.dir, exist_ok=True)
    roots = json.loads(consul(f"{args.consul}/v1/agent/connect/ca/roots"))
    write_atomically(os.path.join(args.dir, "bundle.pem"), "".join(r["RootCert"].strip() + "\n" for r in roots["Roots"]))
    if not args.bundle_only:
        leaf = json.loads(consul(f"{args.consul}/v1/agent/connect/ca/leaf/web"))
        # Key first, then the certificate: a reader takes both between two writes of one kind.
        write_atomically(os.path.join(args.dir, "web-key.pem"), leaf["PrivateKeyPEM"])
        write_atomically(os.path.join(args.dir, "web.pem"), leaf["CertPEM"])


def wait_applied(args):
    """Waits until the gateway's /config has --roots roots and, for each service, Consul's leaf."""
    deadline = time.time() + args.timeout
    started = time.time()
    config = {}
    while True:
        try:
            config = json.loads(urllib.request.urlopen(f"{args.admin}/config", timeout=5).read())
            serials = {s: json.loads(consul(f"{args.consul}/v1/agent/connect/ca/leaf/{s}"))["SerialNumber"] for s in args.services}
            served = config.get("services", {})
            if config.get("roots") == args.roots and all(served.get(s, {}).get("leaf", {}).get("serial") == serials[s] for s in args.services):
                print(f"{time.time() - started:.2f}")
                return 0
        except Exception:
            pass
        if time.time() > deadline:
            print(f"the gateway did not apply it in {args.timeout:.0f} s: /config has {config.get('roots')} roots", file=sys.stderr)
            return 1
        time.sleep(0.1)


def churn(args):
    """Config churn through Consul's API every --every seconds, until --until: the churn services are
    linked and unlinked (terminating-gateway entry), their instances come and go, their
    service-defaults change; every 4th round the stable services' service-defaults are rewritten
    with a new Meta (same function); once a minute a burst of the test server's churn control
    (20 writes/s for 5 s) on one churn service. A call to a linked churn service is only counted."""
    rng = random.Random(7)
    rounds = calls = 0
    answers = {}
    linked = set(args.churn[: len(args.churn) // 2])
    registered = set(args.churn)
    burst = None
    bursts = 0
    context = mesh_context(args.dir)
    while time.time() + args.every < args.until:
        rounds += 1
        try:
            linked = {c for c in args.churn if rng.random() < 0.5}
            link(args.consul, args.stable + [args.bulk] + sorted(linked))
            victim = rng.choice(args.churn)
            if victim in registered:
                deregister_instance(args.consul, victim)
                registered.discard(victim)
            else:
                register_instance(args.consul, victim)
                registered.add(victim)
            changed = rng.choice(args.churn)
            if changed != burst:
                consul(f"{args.consul}/v1/config", "PUT", service_defaults(changed, args.arn_prefix + changed, payload_format=rng.choice([None, "apigateway-v2"]),
                                                                        protocol=rng.choice(["http", "http2"])))
            if rounds % 4 == 0:
                for name in args.stable:
                    consul(f"{args.consul}/v1/config", "PUT", service_defaults(name, args.arn_prefix + name, meta={"soak-round": str(rounds)}))
            if burst is not None:  # the burst ended: give the service its Lambda configuration back
                consul(f"{args.consul}/v1/config", "PUT", service_defaults(burst, args.arn_prefix + burst))
                burst = None
            if rounds % max(1, int(60 / args.every)) == 0:
                burst = rng.choice(args.churn)
                bursts += 1
                consul(f"{args.consul}/_control/churn?service={burst}&per-second=20&seconds={min(5, args.every - 1)}", "POST")
        except Exception as error:
            answers["consul_error"] = answers.get("consul_error", 0) + 1
            print(f"churn: {error}", file=sys.stderr)
        time.sleep(1)
        servable = sorted(linked & registered - {burst})
        if servable:
            name = rng.choice(servable)
            calls += 1
            status = mesh_call(context(), args.port, name + args.sni_suffix)
            answers[status] = answers.get(status, 0) + 1
            print(f"{time.strftime('%H:%M:%S')} call {name}: {status} (linked {sorted(linked)}, registered {sorted(registered)})", file=sys.stderr)
        time.sleep(max(0, args.every - 1))
    print(json.dumps({"client": "churn", "rounds": rounds, "bursts": bursts, "churn_calls": calls, "churn_call_answers": answers}))


def mesh_call(context, port, sni):
    """One GET over mTLS; the status as text, or the error's class name."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=sni) as tls:
                tls.sendall(f"GET /churn HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while b"\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "no_answer"
    except Exception as error:
        return type(error).__name__


# MARK: Abusive clients

def mesh_context(directory, alpn=("http/1.1",), client_certificate=True):
    """A TLS client context built from the caller's current files (re-read on each call), after
    the short pause soak.sh asks for while it swaps the roots bundle."""
    def make():
        while os.path.exists(os.path.join(directory, "rotating")):
            time.sleep(0.05)
        context = ssl.create_default_context(cafile=os.path.join(directory, "bundle.pem"))
        context.check_hostname = False  # Consul leaves carry a SPIFFE URI, no DNS name
        if client_certificate:
            context.load_cert_chain(os.path.join(directory, "web.pem"), os.path.join(directory, "web-key.pem"))
        context.set_alpn_protocols(list(alpn))
        return context
    return make


def stall(args):
    """Clients that hold a connection without completing a request head: `partial` (half a head,
    then nothing), `trickle` (a head one byte a second) and `silent` (nothing after the
    handshake). Each must be closed by --request-headers-timeout (--timeout): seen closed, between
    timeout - 0.5 s and timeout + 2 s after its first byte (after the handshake for `silent`)."""
    context = mesh_context(args.dir)
    results = []
    lock = threading.Lock()
    variants = ["partial", "trickle", "silent"]
    count = [0]

    def one(variant):
        head = f"GET /stall HTTP/1.1\r\nHost: {args.sni}\r\nx-soak: stalled\r\n\r\n".encode()
        record = {"variant": variant}
        try:
            raw = socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout + 10)
            tls = context().wrap_socket(raw, server_hostname=args.sni)
            started = time.time()
            if variant == "partial":
                tls.sendall(head[: len(head) // 2])
            answer = b""
            if variant == "trickle":
                tls.settimeout(1)
                for byte in head[:-1]:  # never the last byte
                    try:
                        tls.sendall(bytes([byte]))
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        answer += chunk
                    except socket.timeout:
                        continue
                    except (ssl.SSLError, OSError):
                        break
            tls.settimeout(args.timeout + 10)
            try:
                while True:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            except (ssl.SSLError, OSError) as error:
                record["read_error"] = type(error).__name__
            elapsed = time.time() - started
            record.update(closed=True, seconds=round(elapsed, 2), answer=answer.split(b"\r\n")[0].decode(errors="replace") or "(none)")
            record["ok"] = args.timeout - 0.5 <= elapsed <= args.timeout + 2
            tls.close()
        except socket.timeout:
            record.update(closed=False, ok=False)
        except Exception as error:
            record.update(closed=None, ok=False, error=f"{type(error).__name__}: {error}")
        with lock:
            results.append(record)

    def worker(index):
        while time.time() + args.timeout + 12 < args.until:
            with lock:
                if count[0] >= args.max_count:
                    return
                count[0] += 1
                variant = variants[count[0] % len(variants)]
            one(variant)
            time.sleep(args.gap)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary = {"client": "stall", "attempts": len(results), "ok": sum(1 for r in results if r.get("ok")), "by_variant": {}}
    for r in results:
        v = summary["by_variant"].setdefault(r["variant"], {"attempts": 0, "closed": 0, "ok": 0, "answers": {}, "max_seconds": 0})
        v["attempts"] += 1
        v["closed"] += 1 if r.get("closed") else 0
        v["ok"] += 1 if r.get("ok") else 0
        key = r.get("answer") or r.get("error", "not closed")
        v["answers"][key] = v["answers"].get(key, 0) + 1
        v["max_seconds"] = max(v["max_seconds"], r.get("seconds", 0))
    summary["failures"] = [r for r in results if not r.get("ok")][:5]
    print(json.dumps(summary))


def hpack_string(text):
    data = text.encode()
    return hpack_integer(len(data), 7, 0) + data


def hpack_integer(value, prefix, first):
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def h2_frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2_request(stream, sni, path):
    # Literal header fields without indexing, new names, no Huffman: the simplest valid HPACK.
    block = b"".join(b"\x00" + hpack_string(n) + hpack_string(v) for n, v in
                     [(":method", "GET"), (":scheme", "https"), (":path", path), (":authority", sni)])
    return h2_frame(0x1, 0x5, stream, block)  # HEADERS, END_STREAM | END_HEADERS


def metric(admin, name, labels):
    text = urllib.request.urlopen(f"{admin}/metrics", timeout=5).read().decode()
    pattern = re.escape(name) + r"\{" + re.escape(labels) + r"\} ([0-9.e+]+)"
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def h2_noread(args):
    """HTTP/2 clients that ask for large answers and stop taking them, one at a time:
    `noread` opens the windows wide, then never reads the socket (its receive buffer is 4 KiB);
    `zero-window` reads, but gives the gateway no flow-control window (SETTINGS_INITIAL_WINDOW_SIZE
    0). Each must be closed by --send-timeout (--timeout): seen as the gateway's
    connections_closed_total{reason="send_timeout"} going up while the client still holds the
    connection, within timeout + 3 s of its requests, then as the end of the stream (GOAWAY or
    EOF) once the client reads again."""
    make = mesh_context(args.dir, alpn=("h2",))
    results = []
    attempt = 0
    while time.time() + 4 * args.timeout + 15 < args.until and attempt < args.max_count:
        attempt += 1
        variant = "noread" if attempt % 2 else "zero-window"
        record = {"variant": variant}
        try:
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if variant == "noread":
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.settimeout(10)
            raw.connect(("127.0.0.1", args.port))
            tls = make().wrap_socket(raw, server_hostname=args.sni)
            if tls.selected_alpn_protocol() != "h2":
                raise RuntimeError(f"ALPN {tls.selected_alpn_protocol()}")
            window = 0 if variant == "zero-window" else 2**31 - 1
            settings = struct.pack(">HI", 0x2, 0) + struct.pack(">HI", 0x4, window)  # ENABLE_PUSH 0, INITIAL_WINDOW_SIZE
            out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(0x4, 0, 0, settings)
            if variant == "noread":
                out += h2_frame(0x8, 0, 0, struct.pack(">I", 2**31 - 1 - 65535))  # connection window wide open
            before = metric(args.admin, "lambda_gateway_connections_closed_total", 'reason="send_timeout"')
            started = time.time()
            tls.sendall(out + b"".join(h2_request(1 + 2 * i, args.sni, "/noread") for i in range(args.streams)))
            closed_after = None
            frames = {}
            received = 0
            buffer = b""
            if variant == "zero-window":
                tls.settimeout(0.5)
            while time.time() - started < 4 * args.timeout + 10:
                if variant == "zero-window":
                    try:
                        chunk = tls.recv(65536)
                        if not chunk:
                            break
                        received += len(chunk)
                        buffer += chunk
                        while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
                            length, kind, flags = int.from_bytes(buffer[:3], "big"), buffer[3], buffer[4]
                            if kind == 0x4 and not flags & 1:
                                tls.sendall(h2_frame(0x4, 0x1, 0))  # SETTINGS ACK (a client that follows the protocol)
                            frames[kind] = frames.get(kind, 0) + 1
                            buffer = buffer[9 + length:]
                    except socket.timeout:
                        pass
                    except (ssl.SSLError, OSError) as error:
                        record["read_error"] = type(error).__name__
                        break
                else:
                    time.sleep(0.5)
                if closed_after is None and metric(args.admin, "lambda_gateway_connections_closed_total", 'reason="send_timeout"') > before:
                    closed_after = time.time() - started
                    if variant == "noread":
                        break
            if closed_after is None and metric(args.admin, "lambda_gateway_connections_closed_total", 'reason="send_timeout"') > before:
                closed_after = time.time() - started  # the end was read before the metric was polled
            if variant == "noread":  # read again: what was queued, then the end
                tls.settimeout(5)
                try:
                    while True:
                        chunk = tls.recv(65536)
                        if not chunk:
                            break
                        received += len(chunk)
                except (ssl.SSLError, OSError) as error:
                    record["read_error"] = type(error).__name__
            names = {0: "DATA", 1: "HEADERS", 3: "RST_STREAM", 4: "SETTINGS", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE"}
            record.update(closed_after=None if closed_after is None else round(closed_after, 2), bytes_received=received,
                          frames={names.get(k, str(k)): v for k, v in frames.items()})
            record["ok"] = closed_after is not None and closed_after <= args.timeout + 3
            tls.close()
        except Exception as error:
            record.update(ok=False, error=f"{type(error).__name__}: {error}")
        results.append(record)
        time.sleep(args.gap)
    print(json.dumps({"client": "h2-noread", "attempts": len(results), "ok": sum(1 for r in results if r.get("ok")),
                      "streams_each": args.streams, "max_closed_after": max([r.get("closed_after") or 0 for r in results], default=0),
                      "results": results[:4], "failures": [r for r in results if not r.get("ok")][:5]}))


def refused(args):
    """Handshakes the gateway must refuse: an SNI it does not serve (with a valid client
    certificate), and a served SNI without a client certificate. A refusal is a failed handshake,
    or (TLS 1.3, where the client finishes first) an alert or EOF instead of an HTTP answer."""
    results = {"unknown-sni": {}, "no-client-cert": {}}
    attempts = 0
    while time.time() + 5 < args.until and attempts < args.max_count:
        attempts += 1
        variant = "unknown-sni" if attempts % 2 else "no-client-cert"
        sni = args.unknown_sni if variant == "unknown-sni" else args.sni
        context = mesh_context(args.dir, client_certificate=variant != "no-client-cert")()
        try:
            with socket.create_connection(("127.0.0.1", args.port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname=sni) as tls:
                    tls.sendall(f"GET /refused HTTP/1.1\r\nHost: {sni}\r\n\r\n".encode())
                    data = tls.recv(4096)
                    outcome = "ACCEPTED " + data.split(b"\r\n")[0].decode(errors="replace") if data.startswith(b"HTTP/") else "refused: EOF"
        except ssl.SSLError as error:
            outcome = "refused: " + (error.reason or type(error).__name__)
        except OSError as error:
            outcome = "refused: " + type(error).__name__
        results[variant][outcome] = results[variant].get(outcome, 0) + 1
        time.sleep(args.gap)
    accepted = sum(n for v in results.values() for k, n in v.items() if k.startswith("ACCEPTED"))
    print(json.dumps({"client": "refused", "attempts": attempts, "ok": attempts - accepted, "outcomes": results}))


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    names = lambda text: [n for n in text.split(",") if n]
    p = commands.add_parser("consul-setup")
    p.add_argument("--consul", required=True)
    p.add_argument("--stable", type=names, required=True)
    p.add_argument("--bulk", required=True)
    p.add_argument("--churn", type=names, required=True)
    p.add_argument("--arn-prefix", required=True)
    p = commands.add_parser("identity")
    p.add_argument("--consul", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--bundle-only", action="store_true")
    p = commands.add_parser("wait-applied")
    p.add_argument("--consul", required=True)
    p.add_argument("--admin", required=True)
    p.add_argument("--roots", type=int, required=True)
    p.add_argument("--services", type=names, required=True)
    p.add_argument("--timeout", type=float, default=30)
    p = commands.add_parser("churn")
    for name in ["--consul", "--bulk", "--arn-prefix", "--dir", "--sni-suffix"]:
        p.add_argument(name, required=True)
    p.add_argument("--stable", type=names, required=True)
    p.add_argument("--churn", type=names, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--until", type=float, required=True)
    p.add_argument("--every", type=float, default=5)
    for name, defaults in [("stall", (4, 2, 1000)), ("h2-noread", (1, 2, 1000)), ("refused", (1, 1, 1000))]:
        p = commands.add_parser(name)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--sni", required=True)
        p.add_argument("--dir", required=True)
        p.add_argument("--until", type=float, required=True)
        p.add_argument("--timeout", type=float, default=5)
        p.add_argument("--workers", type=int, default=defaults[0])
        p.add_argument("--gap", type=float, default=defaults[1])
        p.add_argument("--max-count", type=int, default=defaults[2])
        p.add_argument("--admin")
        p.add_argument("--streams", type=int, default=8)
        p.add_argument("--unknown-sni")
    args = parser.parse_args()
    handlers = {"consul-setup": consul_setup, "identity": identity, "wait-applied": wait_applied, "churn": churn,
                "stall": stall, "h2-noread": h2_noread, "refused": refused}
    sys.exit(handlers[args.command](args) or 0)


if __name__ == "__main__":
    main()
