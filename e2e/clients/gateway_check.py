"""The gateway's own answers, through a real deployment (the kind e2e): wrong credentials UNAUTHENTICATED, a
130 MiB request RESOURCE_EXHAUSTED, gRPC health without credentials SERVING, the canary host served.
Exits non-zero on the first failed check."""
import argparse
import base64
import sys

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from triton_check import connect, infer


def check(condition, message):
    if not condition:
        print(f"check failed: {message}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {message}")


def status_of(call):
    try:
        call()
    except InferenceServerException as e:
        return e.status()
    return "OK"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("address")
    ap.add_argument("--host", required=True)
    ap.add_argument("--canary-host", required=True)
    ap.add_argument("--basic-auth", required=True, help="user:password")
    ap.add_argument("--tls-ca")
    a = ap.parse_args()
    good = {"authorization": "Basic " + base64.b64encode(a.basic_auth.encode()).decode()}
    bad = {"authorization": "Basic " + base64.b64encode(b"username:guess").decode()}
    image = np.zeros((1, 64, 64, 3), np.uint8)

    client = connect(a.address, a.host, a.tls_ca)
    check(status_of(lambda: infer(client, image, "UINT8", bad)) == "StatusCode.UNAUTHENTICATED",
          "wrong password: UNAUTHENTICATED")
    check(status_of(lambda: infer(client, image, "UINT8", None)) == "StatusCode.UNAUTHENTICATED",
          "no credentials: UNAUTHENTICATED")
    too_big = np.zeros(((130 << 20) // (64 * 64 * 3 * 4) + 1, 64, 64, 3), np.float32)
    check(status_of(lambda: infer(client, too_big, "FP32", good)) == "StatusCode.RESOURCE_EXHAUSTED",
          "130 MiB request: RESOURCE_EXHAUSTED")
    canary = connect(a.address, a.canary_host, a.tls_ca)
    check(status_of(lambda: infer(canary, image, "UINT8", good)) == "OK", f"{a.canary_host}: served")

    options = [("grpc.default_authority", a.host), ("grpc.ssl_target_name_override", a.host)]
    if a.tls_ca:
        with open(a.tls_ca, "rb") as f:
            channel = grpc.secure_channel(a.address, grpc.ssl_channel_credentials(f.read()), options)
    else:
        channel = grpc.insecure_channel(a.address, options[:1])
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    check(health.status == health_pb2.HealthCheckResponse.SERVING, "gRPC health without credentials: SERVING")


if __name__ == "__main__":
    main()
