#!/usr/bin/python3
"""A gRPC client that is not the project's own stack (Debian's python3-grpcio).

Usage: python_grpc_client.py SOCKET_PATH WORK_DIR PACKAGE_ROOT
Generates Python stubs for grpc.health.v1 and grpc.reflection.v1 from the .proto files
shipped in node_modules (with grpc_tools, from python3-grpc-tools), then over the Unix
socket: Health/Check for "" and for an unknown service, the first answer of Health/Watch for both,
and reflection list_services. Prints one JSON object.
"""
import json
import os
import shutil
import sys

import grpc
from grpc_tools import protoc

socket_path, work_dir, root = sys.argv[1], sys.argv[2], sys.argv[3]
health_dir = os.path.join(root, "node_modules/grpc-health-check/proto")
# Copied under another directory: a Python module path starting with "grpc." would clash
# with the grpc package itself. The proto package (what goes on the wire) is unchanged.
reflection_dir = os.path.join(work_dir, "src")
os.makedirs(os.path.join(reflection_dir, "reflection_v1"), exist_ok=True)
shutil.copy(
    os.path.join(root, "node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto"),
    os.path.join(reflection_dir, "reflection_v1/reflection.proto"),
)
for include, proto in ((health_dir, "health/v1/health.proto"), (reflection_dir, "reflection_v1/reflection.proto")):
    code = protoc.main(["protoc", f"-I{include}", f"--python_out={work_dir}", f"--grpc_python_out={work_dir}", proto])
    if code != 0:
        sys.exit(f"protoc failed for {proto}")
sys.path.insert(0, work_dir)

from health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from reflection_v1 import reflection_pb2, reflection_pb2_grpc  # noqa: E402

# The daemon's HTTP/2 server needs a host-like :authority (see the README's grpcurl notes).
channel = grpc.insecure_channel(f"unix://{socket_path}", options=[("grpc.default_authority", "localhost")])
stub = health_pb2_grpc.HealthStub(channel)
name = health_pb2.HealthCheckResponse.ServingStatus.Name
health = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
try:
    stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    check_unknown = "OK"
except grpc.RpcError as error:
    check_unknown = error.code().name


def first_watched(service):
    """The status the server sends first on a Watch stream, which is then cancelled."""
    stream = stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=5)
    first = next(stream)
    stream.cancel()
    return name(first.status)


watch = {"": first_watched(""), "no.such.Service": first_watched("no.such.Service")}
reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
services = [s.name for r in responses for s in r.list_services_response.service]
channel.close()
print(json.dumps({"health": name(health.status), "check_unknown": check_unknown, "watch": watch, "services": services}))
