// Command ttrpc-unseal calls api.SealedSecretService/UnsealSecret over ttrpc with containerd's
// Go ttrpc library, as the kata-agent's side of the CDH socket does: an interop check of the
// daemon's ttrpc server against a client that is not ours.
//
// Usage: ttrpc-unseal SOCKET SECRET
// Prints "plaintext <plaintext>" on success, "status <code> <message>" for an error status
// (exit 1), or the transport error on stderr (exit 2).
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/status"
)

// The two messages of protos/api.proto this client needs, described by struct tags so that
// gogo/protobuf (ttrpc's codec in Debian's version) can marshal them without generated code.
type unsealSecretInput struct {
	Secret []byte `protobuf:"bytes,1,opt,name=secret,proto3"`
}

func (m *unsealSecretInput) Reset()         { *m = unsealSecretInput{} }
func (m *unsealSecretInput) String() string { return "api.UnsealSecretInput" }
func (*unsealSecretInput) ProtoMessage()    {}

type unsealSecretOutput struct {
	Plaintext []byte `protobuf:"bytes,1,opt,name=plaintext,proto3"`
}

func (m *unsealSecretOutput) Reset()         { *m = unsealSecretOutput{} }
func (m *unsealSecretOutput) String() string { return "api.UnsealSecretOutput" }
func (*unsealSecretOutput) ProtoMessage()    {}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: ttrpc-unseal SOCKET SECRET")
		os.Exit(2)
	}
	conn, err := net.Dial("unix", os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "dial: %v\n", err)
		os.Exit(2)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()

	// A deadline, so the request carries timeout_nano as the kata-agent's do.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var output unsealSecretOutput
	err = client.Call(ctx, "api.SealedSecretService", "UnsealSecret", &unsealSecretInput{Secret: []byte(os.Args[2])}, &output)
	if err != nil {
		if st, ok := status.FromError(err); ok {
			fmt.Printf("status %d %s\n", int32(st.Code()), st.Message())
			client.Close()
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "call: %v\n", err)
		client.Close()
		os.Exit(2)
	}
	fmt.Printf("plaintext %s\n", output.Plaintext)
}
