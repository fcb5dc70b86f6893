// Command ttrpc-aa serves attestation_agent.AttestationAgentService over ttrpc with containerd's
// Go ttrpc library: an attestation agent that is not ours, for interop tests of the REST front
// and of cc_kbc's AA client. Its answers are deterministic, like a sample attester's: evidence
// and additional evidence carry the runtime data base64-encoded, the TEE type is given by -tee,
// and the kbs token is a fixed test value, or with -token-file the content of that file, read
// at each call (a token from a real attestation to the KBS emulator; unreadable: UNAVAILABLE).
//
// Usage: ttrpc-aa -socket PATH [-token-file F] [-tee sample] [-additional-tees a,b] [-aael ok|not-supported|not-enabled]
// Prints "ready" once listening; one "GetToken <type>" line per token call and one
// "aael <domain> <operation> <content>" line per extend call.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The messages of protos/attestation-agent.proto, described by struct tags for gogo/protobuf.
type evidenceRequest struct {
	RuntimeData []byte `protobuf:"bytes,1,opt,name=RuntimeData,proto3"`
}

func (m *evidenceRequest) Reset()         { *m = evidenceRequest{} }
func (m *evidenceRequest) String() string { return "attestation_agent.GetEvidenceRequest" }
func (*evidenceRequest) ProtoMessage()    {}

type evidenceResponse struct {
	Evidence []byte `protobuf:"bytes,1,opt,name=Evidence,proto3"`
}

func (m *evidenceResponse) Reset()         { *m = evidenceResponse{} }
func (m *evidenceResponse) String() string { return "attestation_agent.GetEvidenceResponse" }
func (*evidenceResponse) ProtoMessage()    {}

type tokenRequest struct {
	TokenType string `protobuf:"bytes,1,opt,name=TokenType,proto3"`
}

func (m *tokenRequest) Reset()         { *m = tokenRequest{} }
func (m *tokenRequest) String() string { return "attestation_agent.GetTokenRequest" }
func (*tokenRequest) ProtoMessage()    {}

type tokenResponse struct {
	Token []byte `protobuf:"bytes,1,opt,name=Token,proto3"`
}

func (m *tokenResponse) Reset()         { *m = tokenResponse{} }
func (m *tokenResponse) String() string { return "attestation_agent.GetTokenResponse" }
func (*tokenResponse) ProtoMessage()    {}

type extendRequest struct {
	Domain        string  `protobuf:"bytes,1,opt,name=Domain,proto3"`
	Operation     string  `protobuf:"bytes,2,opt,name=Operation,proto3"`
	Content       string  `protobuf:"bytes,3,opt,name=Content,proto3"`
	RegisterIndex *uint64 `protobuf:"varint,4,opt,name=RegisterIndex"`
}

func (m *extendRequest) Reset()         { *m = extendRequest{} }
func (m *extendRequest) String() string { return "attestation_agent.ExtendRuntimeMeasurementRequest" }
func (*extendRequest) ProtoMessage()    {}

type extendResponse struct {
	Result int32 `protobuf:"varint,1,opt,name=Result,proto3"`
}

func (m *extendResponse) Reset()         { *m = extendResponse{} }
func (m *extendResponse) String() string { return "attestation_agent.ExtendRuntimeMeasurementResponse" }
func (*extendResponse) ProtoMessage()    {}

type empty struct{}

func (m *empty) Reset()         { *m = empty{} }
func (m *empty) String() string { return "attestation_agent.Empty" }
func (*empty) ProtoMessage()    {}

type teeTypeResponse struct {
	Tee string `protobuf:"bytes,1,opt,name=tee,proto3"`
}

func (m *teeTypeResponse) Reset()         { *m = teeTypeResponse{} }
func (m *teeTypeResponse) String() string { return "attestation_agent.GetTeeTypeResponse" }
func (*teeTypeResponse) ProtoMessage()    {}

type additionalTeesResponse struct {
	AdditionalTees []string `protobuf:"bytes,1,rep,name=additional_tees,proto3"`
}

func (m *additionalTeesResponse) Reset()         { *m = additionalTeesResponse{} }
func (m *additionalTeesResponse) String() string { return "attestation_agent.GetAdditionalTeesResponse" }
func (*additionalTeesResponse) ProtoMessage()    {}

// The kbs token this agent hands out (not a secret: a test value).
const kbsToken = `{"token":"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ0dHJwYy1hYSJ9.c2lnbmF0dXJl","tee_keypair":"-----BEGIN PRIVATE KEY-----\ntest\n-----END PRIVATE KEY-----\n"}`

func main() {
	socket := flag.String("socket", "", "the Unix socket to listen on")
	tokenFile := flag.String("token-file", "", "answer GetToken with this file's content (read at each call)")
	tee := flag.String("tee", "sample", "the TEE type GetTeeType answers")
	additional := flag.String("additional-tees", "", "comma-separated additional TEE types")
	aael := flag.String("aael", "ok", "ExtendRuntimeMeasurement's result: ok, not-supported or not-enabled")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "usage: ttrpc-aa -socket PATH [-token-file F] [-tee T] [-additional-tees a,b] [-aael R]")
		os.Exit(2)
	}
	results := map[string]int32{"ok": 0, "not-supported": 1, "not-enabled": 2}
	result, ok := results[*aael]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown -aael %q\n", *aael)
		os.Exit(2)
	}
	tees := []string{}
	if *additional != "" {
		tees = strings.Split(*additional, ",")
	}

	evidence := func(kind string) ttrpc.Method {
		return func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req evidenceRequest
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			body, _ := json.Marshal(map[string]string{
				"kind":        kind,
				"svn":         "1",
				"report_data": base64.StdEncoding.EncodeToString(req.RuntimeData),
			})
			return &evidenceResponse{Evidence: body}, nil
		}
	}
	methods := map[string]ttrpc.Method{
		"GetEvidence":           evidence("evidence"),
		"GetAdditionalEvidence": evidence("additional-evidence"),
		"GetToken": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req tokenRequest
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			fmt.Printf("GetToken %s\n", req.TokenType)
			if req.TokenType != "kbs" {
				return nil, status.Errorf(codes.InvalidArgument, "unsupported token type %q", req.TokenType)
			}
			if *tokenFile == "" {
				return &tokenResponse{Token: []byte(kbsToken)}, nil
			}
			token, err := os.ReadFile(*tokenFile)
			if err != nil {
				return nil, status.Errorf(codes.Unavailable, "no token: %v", err)
			}
			return &tokenResponse{Token: token}, nil
		},
		"ExtendRuntimeMeasurement": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req extendRequest
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			fmt.Printf("aael %s %s %s\n", req.Domain, req.Operation, req.Content)
			return &extendResponse{Result: result}, nil
		},
		"GetTeeType": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req empty
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return &teeTypeResponse{Tee: *tee}, nil
		},
		"GetAdditionalTees": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req empty
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return &additionalTeesResponse{AdditionalTees: tees}, nil
		},
	}

	server, err := ttrpc.NewServer()
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		os.Exit(1)
	}
	server.Register("attestation_agent.AttestationAgentService", methods)
	os.Remove(*socket)
	listener, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "listen: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	if err := server.Serve(context.Background(), listener); err != nil {
		fmt.Fprintf(os.Stderr, "serve: %v\n", err)
		os.Exit(1)
	}
}
