#!/usr/bin/python3
"""Loads everything a server serves by gRPC reflection into Python's descriptor_pool.

Usage: reflection_check.py SOCKET WORK_DIR PACKAGE_ROOT VERSION [SECRET_FILE]
(Debian's python3-grpcio, python3-grpc-tools and python3-protobuf.)

On one ServerReflectionInfo stream of grpc.reflection.VERSION (v1 or v1alpha): list_services,
file_containing_symbol for every service, then file_by_filename for every dependency not
received yet. Then, for each service, a fresh DescriptorPool gets its file and that file's
imports (a pool validates as protoc does: map entries, type names, json names). The messages
api.SecureMountRequest, api.UnsealSecretInput and api.GetResourceRequest are described from the
pool (when the server has them). With SECRET_FILE, api.SealedSecretService/UnsealSecret is called with a request built as a
dynamic message from the reflected descriptors (no generated API code).

Prints one JSON object; exits 1 if any service's files were refused.
"""
import base64
import json
import os
import queue
import shutil
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

socket_path, work_dir, root, version = sys.argv[1:5]
secret_file = sys.argv[5] if len(sys.argv) > 5 else None

# The reflection messages (the same wire format in v1 and v1alpha), generated from the proto in
# node_modules, under another directory: a module path starting with "grpc." clashes with grpc.
source = os.path.join(work_dir, "src")
os.makedirs(os.path.join(source, "reflection_v1"), exist_ok=True)
shutil.copy(
    os.path.join(root, "node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto"),
    os.path.join(source, "reflection_v1/reflection.proto"),
)
if protoc.main(["protoc", f"-I{source}", f"--python_out={work_dir}", "reflection_v1/reflection.proto"]) != 0:
    sys.exit("protoc failed for reflection.proto")
sys.path.insert(0, work_dir)
from reflection_v1 import reflection_pb2  # noqa: E402

channel = grpc.insecure_channel(f"unix://{socket_path}", options=[("grpc.default_authority", "localhost")])
requests = queue.Queue()
open_stream = channel.stream_stream(
    f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
    request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
    response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
)
responses = open_stream(iter(requests.get, None), timeout=20)


def ask(**fields):
    requests.put(reflection_pb2.ServerReflectionRequest(**fields))
    response = next(responses)
    if response.HasField("error_response"):
        raise SystemExit(f"reflection error for {fields}: {response.error_response.error_message}")
    return response


files = {}  # name -> FileDescriptorProto, as received


def receive(response):
    names = []
    for raw in response.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        files.setdefault(proto.name, proto)
        names.append(proto.name)
    return names


services = sorted(s.name for s in ask(list_services="*").list_services_response.service)
service_files = {}
for service in services:
    service_files[service] = receive(ask(file_containing_symbol=service))[0]
# Every dependency by file name, even when it came with a file_containing_symbol answer.
fetched = set()
while True:
    pending = sorted({d for f in list(files.values()) for d in f.dependency} - fetched)
    if not pending:
        break
    for name in pending:
        got = receive(ask(file_by_filename=name))
        if not got or got[0] != name:
            raise SystemExit(f"file_by_filename {name} answered {got}")
        fetched.add(name)
requests.put(None)


def closure(name, out):
    if name in out:
        return
    for dependency in files[name].dependency:
        closure(dependency, out)
    out.append(name)


def load(service):
    """A fresh pool with the service's file and its imports, in import order."""
    pool = descriptor_pool.DescriptorPool()
    order = []
    closure(service_files[service], order)
    for name in order:
        pool.Add(files[name])
    pool.FindServiceByName(service)
    return pool


errors = {}
pools = {}
for service in services:
    try:
        pools[service] = load(service)
    except Exception as error:  # the pool raises TypeError or KeyError naming the problem
        errors[service] = f"{type(error).__name__}: {error}"

answer = {
    "version": version,
    "services": services,
    "files": sorted(files),
    "by_filename": sorted(fetched),
    "errors": errors,
}
if errors:
    channel.close()
    print(json.dumps(answer))
    sys.exit(1)

TYPE_NAMES = {v: k for k, v in descriptor_pb2.FieldDescriptorProto.Type.items()}


def describe(pool, name):
    message = pool.FindMessageTypeByName(name)
    fields = []
    for field in message.fields:
        entry = {
            "name": field.name,
            "number": field.number,
            "type": TYPE_NAMES[field.type],
            "repeated": field.label == field.LABEL_REPEATED,
            "json_name": field.json_name,
        }
        if field.message_type is not None:
            entry["type_name"] = field.message_type.full_name
            if field.message_type.GetOptions().map_entry:
                key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
                entry["map"] = [TYPE_NAMES[key.type], TYPE_NAMES[value.type]]
        fields.append(entry)
    return fields


api_pool = pools.get("api.SealedSecretService")
if api_pool is not None:
    answer["messages"] = {
        name: describe(api_pool, name)
        for name in ("api.SecureMountRequest", "api.UnsealSecretInput", "api.GetResourceRequest")
    }


def message_class(pool, descriptor):
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


if secret_file is not None:
    method = api_pool.FindServiceByName("api.SealedSecretService").methods_by_name["UnsealSecret"]
    Input = message_class(api_pool, method.input_type)
    Output = message_class(api_pool, method.output_type)
    with open(secret_file, "rb") as f:
        request = Input(secret=f.read())
    unseal = channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=Input.SerializeToString,
        response_deserializer=Output.FromString,
    )
    output = unseal(request, timeout=20)
    answer["plaintext_base64"] = base64.b64encode(output.plaintext).decode()
# Closed before exiting: an open channel can hold the interpreter's exit (grpcio's threads).
channel.close()
print(json.dumps(answer))
