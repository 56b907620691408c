"""Drives the model server as a TensorFlow Serving user does: TF Serving's own Python API (tensorflow-serving-api)
and `tf.make_tensor_proto`, clients none of us wrote.

Checks the model's status, discovers the signature from GetModelMetadata, runs Predict on the test images (against
the numpy reference's probabilities when the catvnoncat data is present) as DT_UINT8 and DT_FLOAT, in
`tensor_content` and in the typed `*_val` fields, honours `output_filter`, classifies tf.Examples, sends one
~100 MB Predict, and checks the codes of bad requests. Through a gateway (`--gateway`) it also checks that a wrong
password is UNAUTHENTICATED and a 130 MiB Predict RESOURCE_EXHAUSTED. Prints a JSON summary on stdout; exits
non-zero on the first failed check.
"""
import base64
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from triton_check import load_images, target_arguments  # noqa: E402

MODEL = "catnet"


def check(condition, message):
    if not condition:
        print(f"check failed: {message}", file=sys.stderr)
        sys.exit(1)


class Client:
    """TF Serving's stubs on one channel, with the call metadata (credentials) every call carries."""

    def __init__(self, address, authority=None, tls_ca=None, basic_auth=None):
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        if authority:
            options.append(("grpc.default_authority", authority))
        if tls_ca:
            if authority:
                options.append(("grpc.ssl_target_name_override", authority))
            with open(tls_ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
            channel = grpc.secure_channel(address, credentials, options=options)
        else:
            channel = grpc.insecure_channel(address, options=options)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(channel)
        self.metadata = []
        if basic_auth:
            self.metadata = [("authorization", "Basic " + base64.b64encode(basic_auth.encode()).decode())]

    def predict(self, inputs, model=MODEL, signature="", output_filter=(), version=None, label=None):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        if version is not None:
            request.model_spec.version.value = version
        if label is not None:
            request.model_spec.version_label = label
        for name, tensor in inputs.items():
            request.inputs[name].CopyFrom(tensor)
        request.output_filter.extend(output_filter)
        return self.prediction.Predict(request, metadata=self.metadata, timeout=120)


def expect_error(call, code):
    try:
        call()
    except grpc.RpcError as e:
        check(e.code() == code, f"expected {code}, got {e.code()}: {e.details()}")
        return e.details()
    check(False, f"expected {code}, the call succeeded")


def typed(images, dtype):
    """A TensorProto with the values in the typed field (int_val for uint8, float_val for float)."""
    tensor = tf.make_tensor_proto(np.zeros(0, images.dtype), dtype=dtype)
    tensor.ClearField("tensor_content")
    tensor.tensor_shape.CopyFrom(tf.TensorShape(images.shape).as_proto())
    if dtype == tf.uint8:
        tensor.int_val.extend(images.reshape(-1).tolist())
    else:
        tensor.float_val.extend(images.reshape(-1).tolist())
    return tensor


def examples(images):
    """Each image as a tf.Example whose `images` feature holds its raw bytes."""
    return [
        tf.train.Example(features=tf.train.Features(feature={
            "images": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()]))
        }))
        for image in images
    ]


def main():
    ap = target_arguments("DT_FLOAT Predict")
    ap.add_argument("--gateway", action="store_true", help="also check the gateway's own refusals")
    a = ap.parse_args()
    client = Client(a.address, a.authority, a.tls_ca, a.basic_auth)
    summary = {}

    status = client.models.GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": MODEL}), metadata=client.metadata)
    versions = {(v.version, get_model_status_pb2.ModelVersionStatus.State.Name(v.state))
                for v in status.model_version_status}
    check(versions == {(1, "AVAILABLE")}, f"model status {status}")

    # The signature as a client discovers it: input alias, dtype and shape, and the outputs.
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    metadata = client.prediction.GetModelMetadata(request, metadata=client.metadata)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    check(metadata.metadata["signature_def"].Unpack(signatures), "signature_def is a SignatureDefMap")
    serving = signatures.signature_def["serving_default"]
    check(serving.method_name == "tensorflow/serving/predict", f"serving_default {serving}")
    (alias, info), = serving.inputs.items()
    dims = [d.size for d in info.tensor_shape.dim]
    check(info.dtype == tf.uint8.as_datatype_enum and dims == [-1, 64, 64, 3], f"input {alias}: {info}")
    outputs = sorted(serving.outputs)
    check(outputs == ["classes", "probabilities"], f"outputs {outputs}")
    summary["signatures"] = sorted(signatures.signature_def)
    summary["input"] = alias
    summary["version"] = metadata.model_spec.version.value

    images, labels, reference = load_images(a.data)
    answer = client.predict({alias: tf.make_tensor_proto(images)})
    check(answer.model_spec.name == MODEL and answer.model_spec.version.value == 1
          and answer.model_spec.signature_name == "serving_default", f"model_spec {answer.model_spec}")
    probs = tf.make_ndarray(answer.outputs["probabilities"]).reshape(-1)
    classes = [c.decode() for c in tf.make_ndarray(answer.outputs["classes"]).reshape(-1)]
    check(probs.shape == (len(images),), f"one probability per image, got {probs.shape}")
    check(classes == ["cat" if p > 0.5 else "non-cat" for p in probs], "classes follow the probabilities")
    summary["images"] = len(images)
    if reference is not None:
        summary["max_diff_vs_numpy"] = float(np.abs(probs - reference).max())
        check(summary["max_diff_vs_numpy"] < 1e-4, f"probabilities differ from numpy's by {summary['max_diff_vs_numpy']}")
        summary["accuracy"] = float(np.mean((probs > 0.5) == (labels == 1)))

    scaled = images.astype(np.float32) / 255.0
    forms = {
        "float tensor_content": tf.make_tensor_proto(scaled),
        "uint8 int_val": typed(images, tf.uint8),
        "float float_val": typed(scaled, tf.float32),
    }
    for form, tensor in forms.items():
        other = tf.make_ndarray(client.predict({alias: tensor}).outputs["probabilities"]).reshape(-1)
        check(np.abs(other - probs).max() < 1e-6, f"{form} agrees with uint8 tensor_content")
    summary["forms"] = ["uint8 tensor_content", *forms]

    filtered = client.predict({alias: tf.make_tensor_proto(images[:2])}, output_filter=["classes"])
    check(sorted(filtered.outputs) == ["classes"], f"output_filter: {sorted(filtered.outputs)}")
    labelled = client.predict({alias: tf.make_tensor_proto(images[:1])}, label="stable")
    check(labelled.model_spec.version.value == 1, "version label `stable` is version 1")

    classified = client.prediction.Classify(classification_pb2.ClassificationRequest(
        model_spec={"name": MODEL, "signature_name": "classify"},
        input={"example_list": {"examples": examples(images[:5])}}), metadata=client.metadata)
    scores = [{c.label: c.score for c in r.classes} for r in classified.result.classifications]
    check(len(scores) == 5 and all(abs(s["cat"] - p) < 1e-6 for s, p in zip(scores, probs[:5])),
          f"Classify scores {scores} vs Predict {probs[:5]}")
    summary["classified"] = len(scores)

    count = -(-a.big_bytes // (64 * 64 * 3 * 4))
    big = np.ascontiguousarray(np.resize(scaled, (count, 64, 64, 3)))
    started = time.perf_counter()
    big_answer = client.predict({alias: tf.make_tensor_proto(big)}, output_filter=["probabilities"])
    summary["big_seconds"] = time.perf_counter() - started
    big_probs = tf.make_ndarray(big_answer.outputs["probabilities"]).reshape(-1)
    check(np.abs(big_probs - np.resize(probs, count)).max() < 1e-5, "the large batch gives each image its own answer")
    summary["big_images"] = count
    summary["big_bytes"] = int(big.nbytes)

    code = grpc.StatusCode
    summary["wrong_shape"] = expect_error(
        lambda: client.predict({alias: tf.make_tensor_proto(np.zeros((1, 32, 32, 3), np.uint8))}),
        code.INVALID_ARGUMENT)
    summary["wrong_dtype"] = expect_error(
        lambda: client.predict({alias: tf.make_tensor_proto(np.zeros((1, 64, 64, 3), np.int32))}),
        code.INVALID_ARGUMENT)
    summary["missing_input"] = expect_error(
        lambda: client.predict({"pixels": tf.make_tensor_proto(images[:1])}), code.INVALID_ARGUMENT)
    summary["unknown_model"] = expect_error(
        lambda: client.predict({alias: tf.make_tensor_proto(images[:1])}, model="no-such-model"), code.NOT_FOUND)
    summary["unknown_version"] = expect_error(
        lambda: client.predict({alias: tf.make_tensor_proto(images[:1])}, version=2), code.NOT_FOUND)
    summary["unknown_signature"] = expect_error(
        lambda: client.predict({alias: tf.make_tensor_proto(images[:1])}, signature="nope"),
        code.FAILED_PRECONDITION)
    summary["unknown_filter"] = expect_error(
        lambda: client.predict({alias: tf.make_tensor_proto(images[:1])}, output_filter=["logits"]),
        code.INVALID_ARGUMENT)

    if a.gateway:
        wrong = Client(a.address, a.authority, a.tls_ca, "username:guess")
        summary["wrong_password"] = expect_error(
            lambda: wrong.predict({alias: tf.make_tensor_proto(images[:1])}), code.UNAUTHENTICATED)
        too_big = np.zeros(((130 << 20) // (64 * 64 * 3 * 4) + 1, 64, 64, 3), np.float32)
        summary["too_big"] = expect_error(
            lambda: client.predict({alias: tf.make_tensor_proto(too_big)}), code.RESOURCE_EXHAUSTED)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
