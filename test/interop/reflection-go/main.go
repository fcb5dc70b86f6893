// Command reflection-check loads everything a server serves by gRPC reflection with Go's
// protodesc (the validation grpcurl 1.9 applies to what it receives), as a check of the
// daemon's reflection against a client that is not ours (Debian: golang-google-grpc-dev,
// golang-google-protobuf-dev).
//
// Usage: reflection-check SOCKET VERSION [SECRET_FILE]
//
// On one ServerReflectionInfo stream of grpc.reflection.VERSION (v1 or v1alpha; one wire
// format, so the v1alpha messages serve both): list_services, file_containing_symbol for every
// service, then file_by_filename for every dependency. For each service, protodesc.NewFiles
// gets its file and that file's imports. The messages api.SecureMountRequest,
// api.UnsealSecretInput and api.GetResourceRequest are described from the result (when served). With
// SECRET_FILE, api.SealedSecretService/UnsealSecret is called with a dynamicpb request built
// from the reflected descriptors. Prints one JSON object; exit 1 if any service's files were
// refused, 2 on any other failure.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

type field struct {
	Name     string   `json:"name"`
	Number   int32    `json:"number"`
	Type     string   `json:"type"`
	Repeated bool     `json:"repeated"`
	JSONName string   `json:"json_name"`
	TypeName string   `json:"type_name,omitempty"`
	Map      []string `json:"map,omitempty"`
}

type answer struct {
	Version         string             `json:"version"`
	Services        []string           `json:"services"`
	Files           []string           `json:"files"`
	ByFilename      []string           `json:"by_filename"`
	Errors          map[string]string  `json:"errors"`
	Messages        map[string][]field `json:"messages,omitempty"`
	PlaintextBase64 []byte             `json:"plaintext_base64,omitempty"`
}

// dynamicCodec marshals with the protobuf API v2 (which knows dynamicpb messages); Debian's grpc
// codec goes through github.com/golang/protobuf 1.3, which knows generated structs only.
type dynamicCodec struct{}

func (dynamicCodec) Marshal(v interface{}) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }
func (dynamicCodec) Unmarshal(data []byte, v interface{}) error {
	return proto.Unmarshal(data, v.(proto.Message))
}
func (dynamicCodec) Name() string { return "proto" }

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}

// kindName is a field's type as descriptor.proto names it (TYPE_STRING, ...).
func kindName(fd protoreflect.FieldDescriptor) string {
	return descriptorpb.FieldDescriptorProto_Type(fd.Kind()).String()
}

func describe(files *protoregistry.Files, name string) []field {
	d, err := files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		fail("describe %s: %v", name, err)
	}
	message, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		fail("%s is not a message", name)
	}
	var out []field
	for i := 0; i < message.Fields().Len(); i++ {
		fd := message.Fields().Get(i)
		f := field{
			Name:     string(fd.Name()),
			Number:   int32(fd.Number()),
			Type:     kindName(fd),
			Repeated: fd.Cardinality() == protoreflect.Repeated,
			JSONName: fd.JSONName(),
		}
		if fd.Message() != nil {
			f.TypeName = string(fd.Message().FullName())
		}
		if fd.IsMap() {
			f.Map = []string{kindName(fd.MapKey()), kindName(fd.MapValue())}
		}
		out = append(out, f)
	}
	return out
}

func main() {
	if len(os.Args) != 3 && len(os.Args) != 4 {
		fail("usage: reflection-check SOCKET VERSION [SECRET_FILE]")
	}
	socket, version := os.Args[1], os.Args[2]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The target names the :authority ("localhost"); the dialer goes to the socket.
	conn, err := grpc.DialContext(ctx, "localhost", grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}))
	if err != nil {
		fail("dial %s: %v", socket, err)
	}
	defer conn.Close()

	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/grpc.reflection."+version+".ServerReflection/ServerReflectionInfo")
	if err != nil {
		fail("open reflection stream: %v", err)
	}
	ask := func(request *rpb.ServerReflectionRequest) *rpb.ServerReflectionResponse {
		if err := stream.SendMsg(request); err != nil {
			fail("send %v: %v", request, err)
		}
		response := new(rpb.ServerReflectionResponse)
		if err := stream.RecvMsg(response); err != nil {
			fail("receive for %v: %v", request, err)
		}
		if e := response.GetErrorResponse(); e != nil {
			fail("reflection error for %v: %s", request, e.ErrorMessage)
		}
		return response
	}
	files := map[string]*descriptorpb.FileDescriptorProto{}
	receive := func(response *rpb.ServerReflectionResponse) []string {
		var names []string
		for _, raw := range response.GetFileDescriptorResponse().GetFileDescriptorProto() {
			fdp := new(descriptorpb.FileDescriptorProto)
			if err := proto.Unmarshal(raw, fdp); err != nil {
				fail("a FileDescriptorProto does not parse: %v", err)
			}
			if _, ok := files[fdp.GetName()]; !ok {
				files[fdp.GetName()] = fdp
			}
			names = append(names, fdp.GetName())
		}
		return names
	}

	result := answer{Version: version, Errors: map[string]string{}, ByFilename: []string{}}
	list := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{ListServices: "*"}})
	for _, s := range list.GetListServicesResponse().GetService() {
		result.Services = append(result.Services, s.Name)
	}
	sort.Strings(result.Services)
	serviceFile := map[string]string{}
	for _, service := range result.Services {
		names := receive(ask(&rpb.ServerReflectionRequest{
			MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: service}}))
		if len(names) == 0 {
			fail("no file for %s", service)
		}
		serviceFile[service] = names[0]
	}
	fetched := map[string]bool{}
	for {
		var pending []string
		for _, f := range files {
			for _, dep := range f.GetDependency() {
				if !fetched[dep] {
					pending = append(pending, dep)
					fetched[dep] = true
				}
			}
		}
		if len(pending) == 0 {
			break
		}
		sort.Strings(pending)
		for _, name := range pending {
			got := receive(ask(&rpb.ServerReflectionRequest{
				MessageRequest: &rpb.ServerReflectionRequest_FileByFilename{FileByFilename: name}}))
			if len(got) == 0 || got[0] != name {
				fail("file_by_filename %s answered %v", name, got)
			}
			result.ByFilename = append(result.ByFilename, name)
		}
	}
	stream.CloseSend()
	for name := range files {
		result.Files = append(result.Files, name)
	}
	sort.Strings(result.Files)
	sort.Strings(result.ByFilename)

	registries := map[string]*protoregistry.Files{}
	for _, service := range result.Services {
		set := &descriptorpb.FileDescriptorSet{}
		seen := map[string]bool{}
		var add func(name string)
		add = func(name string) {
			if seen[name] {
				return
			}
			seen[name] = true
			f, ok := files[name]
			if !ok {
				result.Errors[service] = "dependency not served: " + name
				return
			}
			for _, dep := range f.GetDependency() {
				add(dep)
			}
			set.File = append(set.File, f)
		}
		add(serviceFile[service])
		if _, bad := result.Errors[service]; bad {
			continue
		}
		registry, err := protodesc.NewFiles(set)
		if err != nil {
			result.Errors[service] = err.Error()
			continue
		}
		if _, err := registry.FindDescriptorByName(protoreflect.FullName(service)); err != nil {
			result.Errors[service] = err.Error()
			continue
		}
		registries[service] = registry
	}
	if len(result.Errors) > 0 {
		json.NewEncoder(os.Stdout).Encode(result)
		os.Exit(1)
	}

	api := registries["api.SealedSecretService"]
	if api != nil {
		result.Messages = map[string][]field{}
		for _, name := range []string{"api.SecureMountRequest", "api.UnsealSecretInput", "api.GetResourceRequest"} {
			result.Messages[name] = describe(api, name)
		}
	}

	if len(os.Args) == 4 {
		if api == nil {
			fail("api.SealedSecretService is not listed")
		}
		secret, err := ioutil.ReadFile(os.Args[3])
		if err != nil {
			fail("read the secret: %v", err)
		}
		d, _ := api.FindDescriptorByName("api.SealedSecretService")
		service := d.(protoreflect.ServiceDescriptor)
		method := service.Methods().ByName("UnsealSecret")
		if method == nil {
			fail("api.SealedSecretService has no UnsealSecret")
		}
		input := dynamicpb.NewMessage(method.Input())
		input.Set(method.Input().Fields().ByName("secret"), protoreflect.ValueOfBytes(secret))
		output := dynamicpb.NewMessage(method.Output())
		path := "/" + string(service.FullName()) + "/" + string(method.Name())
		if err := conn.Invoke(ctx, path, input, output, grpc.ForceCodec(dynamicCodec{})); err != nil {
			fail("%s: %v", path, err)
		}
		result.PlaintextBase64 = output.Get(method.Output().Fields().ByName("plaintext")).Bytes()
	}
	var text strings.Builder
	if err := json.NewEncoder(&text).Encode(result); err != nil {
		fail("encode: %v", err)
	}
	fmt.Print(text.String())
}
