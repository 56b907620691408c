"""Drives the model server with NVIDIA's tritonclient[grpc], a client none of us wrote.

Checks liveness, readiness, metadata, classifications (against the numpy reference's probabilities when the
catvnoncat data is present), UINT8 and FP32 inputs, one ~100 MB FP32 batch, and the error codes of bad requests.
Prints a JSON summary on stdout; exits non-zero on the first failed check.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

MODEL = "catnet"
IMAGE = (64, 64, 3)


def check(condition, message):
    if not condition:
        print(f"check failed: {message}", file=sys.stderr)
        sys.exit(1)


def load_images(data_dir):
    """The 50 test images (and the reference's outputs) when the data set is present, else a generated batch."""
    if data_dir and os.path.isfile(os.path.join(data_dir, "test_x.npy")):
        x = np.load(os.path.join(data_dir, "test_x.npy"))
        y = np.load(os.path.join(data_dir, "test_y.npy"))
        ref = np.load(os.path.join(data_dir, "reference_test_probs_2500.npy"))
        return x, y, ref
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(50, *IMAGE), dtype=np.uint8), None, None


def infer(client, images, datatype, headers, outputs=None):
    tensor = grpcclient.InferInput("images", list(images.shape), datatype)
    tensor.set_data_from_numpy(images)
    requested = [grpcclient.InferRequestedOutput(name) for name in outputs] if outputs else None
    return client.infer(MODEL, [tensor], outputs=requested, headers=headers)


def expect_error(call, status):
    try:
        call()
    except InferenceServerException as e:
        check(e.status() == status, f"expected {status}, got {e.status()}: {e.message()}")
        return e.message()
    check(False, f"expected {status}, the call succeeded")


def connect(address, authority=None, tls_ca=None):
    """A tritonclient for `address`, sending `authority` as :authority (and as the TLS name) when given."""
    channel_args = []
    if authority:
        channel_args.append(("grpc.default_authority", authority))
        if tls_ca:
            channel_args.append(("grpc.ssl_target_name_override", authority))
    return grpcclient.InferenceServerClient(address, ssl=bool(tls_ca), root_certificates=tls_ca,
                                            channel_args=channel_args or None)


def target_arguments(big):
    """The arguments every client check takes: where to call, with what data, through which gateway."""
    ap = argparse.ArgumentParser()
    ap.add_argument("address", help="host:port of the server or gateway")
    ap.add_argument("--data", help="catvnoncat folder (test_x.npy, reference_test_probs_2500.npy)")
    ap.add_argument("--big-bytes", type=int, default=100_000_000, help=f"size of the large {big}")
    ap.add_argument("--authority", help=":authority to send (the host a gateway routes on)")
    ap.add_argument("--basic-auth", help="user:password for a gateway that asks for it")
    ap.add_argument("--tls-ca", help="CA certificate: talk TLS (HTTPS) and trust this CA")
    return ap


def main():
    a = target_arguments("FP32 batch").parse_args()
    client = connect(a.address, a.authority, a.tls_ca)
    headers = None
    if a.basic_auth:
        import base64
        headers = {"authorization": "Basic " + base64.b64encode(a.basic_auth.encode()).decode()}

    check(client.is_server_live(headers=headers), "server live")
    check(client.is_server_ready(headers=headers), "server ready")
    check(client.is_model_ready(MODEL, headers=headers), "model ready")
    check(not client.is_model_ready("no-such-model", headers=headers), "unknown model not ready")
    server = client.get_server_metadata(headers=headers)
    meta = client.get_model_metadata(MODEL, headers=headers)
    check(meta.inputs[0].name == "images" and list(meta.inputs[0].shape) == [-1, 64, 64, 3], f"metadata {meta}")
    check([o.name for o in meta.outputs] == ["probabilities", "labels"], f"outputs {meta.outputs}")

    images, labels, reference = load_images(a.data)
    result = infer(client, images, "UINT8", headers)
    probs = result.as_numpy("probabilities").reshape(-1)
    names = [v.decode() for v in result.as_numpy("labels").reshape(-1)]
    check(probs.shape == (len(images),), f"one probability per image, got {probs.shape}")
    check(names == ["cat" if p > 0.5 else "non-cat" for p in probs], "labels follow the probabilities")
    summary = {"server": server.name, "images": len(images), "probabilities": probs.tolist()}
    if reference is not None:
        summary["max_diff_vs_numpy"] = float(np.abs(probs - reference).max())
        check(summary["max_diff_vs_numpy"] < 1e-4, f"probabilities differ from numpy's by {summary['max_diff_vs_numpy']}")
        summary["accuracy"] = float(np.mean((probs > 0.5) == (labels == 1)))

    scaled = (images.astype(np.float32) / 255.0)
    fp32 = infer(client, scaled, "FP32", headers, outputs=["probabilities"]).as_numpy("probabilities").reshape(-1)
    check(np.abs(fp32 - probs).max() < 1e-6, "FP32 and UINT8 inputs agree")

    count = -(-a.big_bytes // (int(np.prod(IMAGE)) * 4))
    big = np.ascontiguousarray(np.resize(scaled, (count, *IMAGE)))
    started = time.perf_counter()
    big_probs = infer(client, big, "FP32", headers, outputs=["probabilities"]).as_numpy("probabilities").reshape(-1)
    summary["big_seconds"] = time.perf_counter() - started
    summary["big_images"] = count
    summary["big_bytes"] = int(big.nbytes)
    expected = np.resize(probs, count)
    check(np.abs(big_probs - expected).max() < 1e-5, "the large batch gives each image its own probability")

    summary["invalid_shape"] = expect_error(
        lambda: infer(client, np.zeros((1, 32, 32, 3), np.uint8), "UINT8", headers), "StatusCode.INVALID_ARGUMENT")
    summary["unknown_model"] = expect_error(
        lambda: client.get_model_metadata("no-such-model", headers=headers), "StatusCode.NOT_FOUND")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
