#!/usr/bin/env bash
# Regenerates definition_pb2.py, service_pb2.py and their .pyi stubs from the .proto files beside this script.
#
# protoc comes from grpcio-tools, installed into a throwaway virtualenv that is deleted afterwards: grpcio-tools is
# a tool for this script only, never a dependency of pocketmq or of its tests. The protobuf runtime that pocketmq
# requires (pyproject.toml) must be at least the gencode version the generated modules check at import
# (ValidateProtobufRuntimeVersion) and of the same major version; bump both together.
#
# Usage: codec/grpc_v2/regenerate.sh            (from anywhere)
#        GRPCIO_TOOLS=grpcio-tools==X.Y.Z codec/grpc_v2/regenerate.sh
set -euo pipefail

GRPCIO_TOOLS="${GRPCIO_TOOLS:-grpcio-tools==1.85.1}"
PYTHON="${PYTHON:-python3}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$(mktemp -d "${TMPDIR:-/tmp}/pocketmq-protoc.XXXXXX")"
trap 'rm -rf "$venv"' EXIT

"$PYTHON" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$GRPCIO_TOOLS"

cd "$root"
"$venv/bin/python" -m grpc_tools.protoc -I . --python_out=. --pyi_out=. \
    codec/grpc_v2/definition.proto codec/grpc_v2/service.proto

grep -h "ValidateProtobufRuntimeVersion" -A 7 codec/grpc_v2/definition_pb2.py | tr -d ' \n' | sed 's/$/\n/'
echo "regenerated codec/grpc_v2/{definition,service}_pb2.py{,i} with $("$venv/bin/python" -m grpc_tools.protoc --version)"
