"""Lists the model server's services through gRPC server reflection (grpcio-reflection) and asks the standard
health service (grpcio-health-checking) for their status. Prints JSON on stdout."""
import argparse
import json

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("address")
    a = ap.parse_args()
    channel = grpc.insecure_channel(a.address)

    database = ProtoReflectionDescriptorDatabase(channel)
    pool = DescriptorPool(database)
    service = pool.FindServiceByName("inference.GRPCInferenceService")
    request = pool.FindMessageTypeByName("inference.ModelInferRequest")
    predict = pool.FindMessageTypeByName("tensorflow.serving.PredictRequest")
    tf_service = pool.FindServiceByName("tensorflow.serving.PredictionService")

    health = health_pb2_grpc.HealthStub(channel)
    status = {
        name or "(server)": health_pb2.HealthCheckResponse.ServingStatus.Name(
            health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status)
        for name in ["", "inference.GRPCInferenceService", "tensorflow.serving.PredictionService"]
    }
    print(json.dumps({
        "services": sorted(database.get_services()),
        "methods": [m.name for m in service.methods],
        "model_infer_request_fields": {f.name: f.number for f in request.fields},
        "predict_request_fields": {f.name: f.number for f in predict.fields},
        "tf_methods": [m.name for m in tf_service.methods],
        "health": status,
    }))


if __name__ == "__main__":
    main()
