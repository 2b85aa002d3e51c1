#!/usr/bin/env python3
"""AWS Lambda and S3 on loopback, for `flowc run --target lambda` without an AWS account.

Starts, and stops together on SIGTERM, SIGINT or when its standard input closes:
  * moto (`python3 -m moto.server`): S3 and Lambda's control plane (create, update, get,
    list functions), with one bucket created;
  * `cargo lambda watch --only-lambda-apis`: Lambda's Invoke API and the Runtime API the
    function instances poll;
  * a front on its own port for the Lambda API: invocations go to cargo-lambda, everything
    else to moto. It behaves as Lambda does where the emulator does not: it starts a function
    instance (the given `flowc` binary, with the variables Lambda sets) when every instance of
    the function is busy, answers 429 TooManyRequestsException beyond the concurrency limit
    (or, with --throttle-every K, on every K-th invocation), and reports a function's error
    with status 200 and `X-Amz-Function-Error` instead of cargo-lambda's 500.

When everything answers, prints one line of JSON: the endpoints, bucket, region, role and
key, and the `export` lines that point flowc at them.
"""

import argparse
import http.client
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

# The memory sizes the `aws` profile plans with (powers of two from 128 MB, each whole vCPU,
# and the maximum): cargo-lambda serves only functions it knows by name.
# The address every server binds and every instance is told (--host).
HOST = "127.0.0.1"

SIZES = [128, 256, 512, 1024, 1769, 2048, 3538, 4096, 5307, 7076, 8192, 8845, 10240]


def signed_for(service):
    """An Authorization header naming `service` (moto checks no signatures, but routes by it)."""
    return (f"AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, "
            "SignedHeaders=host, Signature=0")


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(port, what, child, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if child.poll() is not None:
            sys.exit(f"{what} exited with status {child.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{what} did not answer on port {port} within {seconds} s")


class Functions:
    """The function instances started so far, by function name."""

    def __init__(self, args, runtime_port, moto_port):
        self.args = args
        self.runtime_port = runtime_port
        self.moto_port = moto_port
        self.lock = threading.Lock()
        self.instances = {}  # name -> [Popen]
        self.busy = {}  # name -> invocations in flight
        self.invocations = 0

    def config(self, name):
        """The function's environment and memory as deployed in moto, if it was."""
        try:
            url = f"http://{HOST}:{self.moto_port}/2015-03-31/functions/{name}/configuration"
            # moto routes by the service a request is signed for; this one is for Lambda.
            request = urllib.request.Request(url, headers={"Authorization": signed_for("lambda")})
            with urllib.request.urlopen(request, timeout=5) as reply:
                conf = json.load(reply)
            env = conf.get("Environment", {}).get("Variables", {})
            return env, conf.get("MemorySize")
        except Exception:
            return {}, None

    def start_instance(self, name):
        env, memory = self.config(name)
        match = re.match(r"^.*-(\d+)mb$", name)
        memory = memory or (int(match.group(1)) if match else 1769)
        child_env = dict(os.environ)
        child_env.update(env)
        child_env.setdefault("FLOW_LAMBDA_KEY", self.args.key)
        child_env.update(
            {
                "AWS_LAMBDA_RUNTIME_API": f"http://{HOST}:{self.runtime_port}/.rt/{name}",
                "AWS_LAMBDA_FUNCTION_NAME": name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_ENDPOINT_URL": f"http://{HOST}:{self.moto_port}",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": self.args.region,
                "AWS_REGION": self.args.region,
            }
        )
        for var in ("AWS_ENDPOINT_URL_LAMBDA", "FLOW_LAMBDA_MEMORY_MB"):
            child_env.pop(var, None)
        # The NAT test bed (scripts/nat-testbed) places each instance in a private host.
        launcher = os.environ.get("FLOW_WORKER_LAUNCHER")
        command = [launcher, self.args.flowc] if launcher else [self.args.flowc]
        return subprocess.Popen(
            command,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None if self.args.verbose else subprocess.DEVNULL,
        )

    def enter(self, name):
        """Counts an invocation in; False when it must be throttled."""
        with self.lock:
            self.invocations += 1
            k = self.args.throttle_every
            if k and self.invocations % k == 0:
                return False
            alive = [p for p in self.instances.get(name, []) if p.poll() is None]
            busy = self.busy.get(name, 0)
            if busy >= self.args.concurrency:
                return False
            if busy >= len(alive):
                alive.append(self.start_instance(name))
            self.instances[name] = alive
            self.busy[name] = busy + 1
            return True

    def leave(self, name):
        with self.lock:
            self.busy[name] -= 1

    def stop(self):
        with self.lock:
            for children in self.instances.values():
                for p in children:
                    p.kill()
            for children in self.instances.values():
                for p in children:
                    p.wait()


def front(functions, runtime_port, moto_port):
    invoke = re.compile(r"^/2015-03-31/functions/([^/?]+)/invocations")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def relay(self, port, body, timeout=None):
            conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            headers["Host"] = f"{HOST}:{port}"
            conn.request(self.command, self.path, body=body, headers=headers)
            reply = conn.getresponse()
            return reply.status, reply.getheaders(), reply.read()

        def answer(self, status, headers, body):
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def handle_any(self):
            body = self.body()
            match = invoke.match(self.path)
            if match and self.command == "POST":
                self.invoke(match.group(1), body)
            else:
                self.answer(*self.relay(moto_port, body))

        def invoke(self, name, body):
            if not functions.enter(name):
                message = json.dumps({"Type": "User", "message": "Rate Exceeded."}).encode()
                self.answer(
                    429,
                    [
                        ("Content-Type", "application/json"),
                        ("X-Amzn-ErrorType", "TooManyRequestsException"),
                    ],
                    message,
                )
                return
            try:
                status, headers, reply = self.relay(runtime_port, body)
            except OSError as e:
                status, headers, reply = 502, [], str(e).encode()
            finally:
                functions.leave(name)
            if status == 500 and reply.lstrip().startswith(b"{"):
                headers = [("X-Amz-Function-Error", "Unhandled")] + list(headers)
                status = 200
            self.answer(status, headers, reply)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flowc", required=True, help="the flowc binary function instances run")
    parser.add_argument("--bucket", default="flow-lambda")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--key", default=secrets.token_hex(32),
                        help="the deployment key of functions not deployed in moto")
    parser.add_argument("--prefix", default="flowc", help="the functions' name prefix")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="instances per function; more invocations at once are throttled")
    parser.add_argument("--throttle-every", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help="the front's port (default: any)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address servers listen on and instances reach them at")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--while-stdin", action="store_true",
                        help="stop when standard input closes (for test harnesses)")
    args = parser.parse_args()
    args.flowc = os.path.abspath(args.flowc)
    global HOST
    HOST = args.host

    cargo_lambda = shutil.which("cargo-lambda")
    if cargo_lambda is None:
        sys.exit("cargo-lambda is not installed: python3 -m pip install cargo-lambda")
    children = []
    workspace = tempfile.mkdtemp(prefix="flow-lambda-emulator-")
    functions = None

    def stop(*_):
        if functions is not None:
            functions.stop()
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        shutil.rmtree(workspace, ignore_errors=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    moto_port = free_port()
    quiet = None if args.verbose else subprocess.DEVNULL
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(moto_port)],
        stdout=quiet, stderr=quiet, stdin=subprocess.DEVNULL,
    )
    children.append(moto)

    # cargo-lambda serves only functions named as binaries of the workspace it runs in.
    bins = "".join(
        f'[[bin]]\nname = "{args.prefix}-{m}mb"\npath = "main.rs"\n' for m in SIZES
    )
    with open(os.path.join(workspace, "Cargo.toml"), "w") as f:
        f.write(f'[package]\nname = "flow-lambda-emulator"\nversion = "0.0.0"\nedition = "2021"\n\n{bins}')
    with open(os.path.join(workspace, "main.rs"), "w") as f:
        f.write("fn main() {}\n")
    runtime_port = free_port()
    watch = subprocess.Popen(
        ["cargo", "lambda", "watch", "--only-lambda-apis", "-A", HOST,
         "-P", str(runtime_port)],
        cwd=workspace, stdout=quiet, stderr=quiet, stdin=subprocess.DEVNULL,
    )
    children.append(watch)
    wait_for(moto_port, "moto", moto)
    wait_for(runtime_port, "cargo lambda watch", watch)

    # The bucket, and a role a deployment can name.
    urllib.request.urlopen(
        urllib.request.Request(f"http://{HOST}:{moto_port}/{args.bucket}", method="PUT"),
        timeout=30,
    ).read()
    role_form = (
        "Action=CreateRole&Version=2010-05-08&RoleName=flow-lambda&AssumeRolePolicyDocument="
        + urllib.parse.quote(json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                           "Action": "sts:AssumeRole"}],
        }))
    )
    iam = urllib.request.Request(
        f"http://{HOST}:{moto_port}/", data=role_form.encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "Authorization": signed_for("iam")},
    )
    reply = urllib.request.urlopen(iam, timeout=30).read().decode()
    role = re.search(r"<Arn>([^<]+)</Arn>", reply).group(1)

    functions = Functions(args, runtime_port, moto_port)
    port = args.port or free_port()
    server = http.server.ThreadingHTTPServer((HOST, port), front(functions, runtime_port, moto_port))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    env = {
        "AWS_ENDPOINT_URL": f"http://{HOST}:{moto_port}",
        "AWS_ENDPOINT_URL_LAMBDA": f"http://{HOST}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": args.region,
        "AWS_DEFAULT_REGION": args.region,
        "FLOW_LAMBDA_ROLE": role,
        "FLOW_LAMBDA_BUCKET": args.bucket,
    }
    print(json.dumps({"env": env, "key": args.key, "pid": os.getpid()}), flush=True)
    if args.while_stdin:
        # Ends with whoever started it, even if it dies: its end of the pipe closes.
        try:
            while sys.stdin.buffer.read(1):
                pass
        except (OSError, ValueError):
            pass
        stop()
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
