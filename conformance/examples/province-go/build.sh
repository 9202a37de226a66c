#!/bin/sh
# Builds the example province from a contract written by the kit:
#   npx evc-conformance contract --out contract && ./build.sh contract
# Generates Go code from contract/evc.binpb into .gopath/src/evcgen (Debian's protoc-gen-go,
# one protoc run per proto package, as that generator wants) and builds ./province-go with
# Debian's Go packages only: GOPATH mode, no module downloads.
set -eu
contract=${1:?usage: build.sh CONTRACT_DIR (from: npx evc-conformance contract --out CONTRACT_DIR)}
here=$(cd "$(dirname "$0")" && pwd)
out="$here/.gopath/src/evcgen"
rm -rf "$out" && mkdir -p "$out"

# Where each proto file's Go package lives. The well-known types map to the packages Debian's
# golang-goprotobuf-dev provides (the image names the newer google.golang.org/protobuf ones).
map="Mgoogle/protobuf/timestamp.proto=github.com/golang/protobuf/ptypes/timestamp"
map="$map,Mgoogle/protobuf/duration.proto=github.com/golang/protobuf/ptypes/duration"
map="$map,Mgoogle/protobuf/descriptor.proto=github.com/golang/protobuf/protoc-gen-go/descriptor"
map="$map,Mgoogle/protobuf/field_mask.proto=google.golang.org/genproto/protobuf/field_mask"
map="$map,Mbuf/validate/validate.proto=evcgen/buf/validate"
files=$(cd "$contract/proto" && find evc -name '*.proto' | sort)
for f in $files; do map="$map,M$f=evcgen/$(dirname "$f")"; done

gen() { protoc --descriptor_set_in="$contract/evc.binpb" --go_out="plugins=grpc,paths=source_relative,$map:$out" "$@"; }
gen buf/validate/validate.proto
for dir in $(for f in $files; do dirname "$f"; done | sort -u); do
  gen $(for f in $files; do [ "$(dirname "$f")" = "$dir" ] && echo "$f"; done)
done

cd "$here"
GO111MODULE=off GOPATH="/usr/share/gocode:$here/.gopath" GOFLAGS= go build -o province-go .
echo "built $here/province-go"
