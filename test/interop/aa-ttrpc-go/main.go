// Command aa-ttrpc-server serves attestation_agent.AttestationAgentService/GetToken over ttrpc
// with containerd's Go ttrpc library: an interop check of the daemon's AA client (cc_kbc)
// against a server that is not ours. The token answer (JSON {"token", "tee_keypair"}, from a
// real attestation to the KBS emulator) is read from TOKEN_FILE at each call.
//
// Usage: aa-ttrpc-server SOCKET TOKEN_FILE
// Prints "listening" once serving; then one line "GetToken <type>" per call.
package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The two messages of protos/attestation-agent.proto GetToken needs, described by struct tags
// so that gogo/protobuf (ttrpc's codec in Debian's version) marshals them without generated code.
type getTokenRequest struct {
	TokenType string `protobuf:"bytes,1,opt,name=TokenType,proto3"`
}

func (m *getTokenRequest) Reset()         { *m = getTokenRequest{} }
func (m *getTokenRequest) String() string { return "attestation_agent.GetTokenRequest" }
func (*getTokenRequest) ProtoMessage()    {}

type getTokenResponse struct {
	Token []byte `protobuf:"bytes,1,opt,name=Token,proto3"`
}

func (m *getTokenResponse) Reset()         { *m = getTokenResponse{} }
func (m *getTokenResponse) String() string { return "attestation_agent.GetTokenResponse" }
func (*getTokenResponse) ProtoMessage()    {}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: aa-ttrpc-server SOCKET TOKEN_FILE")
		os.Exit(2)
	}
	socket, tokenFile := os.Args[1], os.Args[2]
	os.Remove(socket)
	listener, err := net.Listen("unix", socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "listen: %v\n", err)
		os.Exit(2)
	}
	server, err := ttrpc.NewServer()
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		os.Exit(2)
	}
	server.Register("attestation_agent.AttestationAgentService", map[string]ttrpc.Method{
		"GetToken": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var request getTokenRequest
			if err := unmarshal(&request); err != nil {
				return nil, err
			}
			fmt.Printf("GetToken %s\n", request.TokenType)
			if request.TokenType != "kbs" {
				return nil, status.Errorf(codes.InvalidArgument, "token type %q is not supported", request.TokenType)
			}
			token, err := os.ReadFile(tokenFile)
			if err != nil {
				return nil, status.Errorf(codes.Unavailable, "no token: %v", err)
			}
			return &getTokenResponse{Token: token}, nil
		},
	})
	fmt.Println("listening")
	if err := server.Serve(context.Background(), listener); err != nil && err != ttrpc.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "serve: %v\n", err)
		os.Exit(1)
	}
}
