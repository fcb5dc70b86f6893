import { fromBinary } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import {
  FileDescriptorProtoSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  type FileDescriptorProto,
} from '@bufbuild/protobuf/wkt';
import * as protobuf from 'protobufjs';
import * as descriptor from 'protobufjs/ext/descriptor';

/**
 * gRPC server reflection (v1 and v1alpha share one wire format) over a FileDescriptorSet made
 * by a protobuf compiler: each file is answered with the compiler's own bytes, never rebuilt,
 * so clients that validate descriptors (grpcurl, Go's protodesc, Python's descriptor_pool)
 * load them as they would load generated code.
 */

const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

export interface ReflectionRequest {
  host?: string;
  message_request?: string;
  file_by_filename?: string;
  file_containing_symbol?: string;
  file_containing_extension?: { containing_type?: string; extension_number?: number };
  all_extension_numbers_of_type?: string;
  list_services?: string;
}

export type ReflectionAnswer =
  | { file_descriptor_response: { file_descriptor_proto: Uint8Array[] } }
  | { all_extension_numbers_response: { base_type_name: string; extension_number: number[] } }
  | { list_services_response: { service: Array<{ name: string }> } }
  | { error_response: { error_code: number; error_message: string } };

export type ReflectionResponse = ReflectionAnswer & {
  valid_host: string;
  original_request: ReflectionRequest;
};

interface ServedFile {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly dependencies: readonly string[];
}

/** The FileDescriptorProtos of a FileDescriptorSet, each as the exact bytes it was written with. */
export function splitDescriptorSet(set: Uint8Array): Uint8Array[] {
  const reader = new BinaryReader(set);
  const files: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === 1 && wireType === WireType.LengthDelimited) files.push(reader.bytes());
    else reader.skip(wireType, fieldNo);
  }
  return files;
}

export class DescriptorSetReflection {
  private readonly files = new Map<string, ServedFile>();
  private readonly symbols = new Map<string, ServedFile>();
  /** Extended type (no leading dot) → extension number → the file declaring it. */
  private readonly extensions = new Map<string, Map<number, ServedFile>>();
  private readonly services: string[];

  /**
   * Serves `serviceNames` (each must be in `set`) and the files they need: the files that
   * declare them and every file those import, transitively. Other files of the set are not served.
   */
  constructor(set: Uint8Array, serviceNames: readonly string[]) {
    const all = new Map<string, { file: ServedFile; shape: FileDescriptorProto }>();
    for (const bytes of splitDescriptorSet(set)) {
      const shape = fromBinary(FileDescriptorProtoSchema, bytes);
      const name = shape.name;
      all.set(name, { file: { name, bytes, dependencies: shape.dependency }, shape });
    }
    const declaring = new Map<string, string>();
    for (const [name, { shape }] of all) {
      const prefix = shape.package ? `${shape.package}.` : '';
      for (const service of shape.service) declaring.set(prefix + service.name, name);
    }
    const pending: string[] = [];
    for (const service of serviceNames) {
      const file = declaring.get(service);
      if (file === undefined) throw new Error(`service ${service} is not in the compiled descriptor set`);
      pending.push(file);
    }
    while (pending.length > 0) {
      const name = pending.pop() as string;
      if (this.files.has(name)) continue;
      const entry = all.get(name);
      if (entry === undefined) throw new Error(`${name} is imported but not in the compiled descriptor set`);
      this.files.set(name, entry.file);
      this.index(entry.file, entry.shape);
      pending.push(...entry.file.dependencies);
    }
    this.services = [...new Set(serviceNames)].sort();
  }

  /** Names of the served files (for tests and diagnostics). */
  fileNames(): string[] {
    return [...this.files.keys()].sort();
  }

  /**
   * Answers one request of a stream. `sent` holds the files already sent on that stream: a
   * file's dependencies are sent once per stream, the file asked for every time.
   */
  answer(request: ReflectionRequest, sent: Set<string>): ReflectionResponse {
    return { valid_host: request.host ?? '', original_request: request, ...this.answerOf(request, sent) };
  }

  private answerOf(request: ReflectionRequest, sent: Set<string>): ReflectionAnswer {
    switch (request.message_request) {
      case 'list_services':
        return { list_services_response: { service: this.services.map((name) => ({ name })) } };
      case 'file_by_filename': {
        const name = request.file_by_filename ?? '';
        const file = this.files.get(name);
        return file ? this.withDependencies(file, sent) : notFound(`file not found: ${quoted(name)}`);
      }
      case 'file_containing_symbol': {
        const symbol = (request.file_containing_symbol ?? '').replace(/^\./, '');
        const file = this.symbols.get(symbol);
        return file ? this.withDependencies(file, sent) : notFound(`symbol not found: ${quoted(symbol)}`);
      }
      case 'file_containing_extension': {
        const type = (request.file_containing_extension?.containing_type ?? '').replace(/^\./, '');
        const number = request.file_containing_extension?.extension_number ?? 0;
        const file = this.extensions.get(type)?.get(number);
        return file
          ? this.withDependencies(file, sent)
          : notFound(`extension not found: ${quoted(type)} has no extension ${number}`);
      }
      case 'all_extension_numbers_of_type': {
        const type = (request.all_extension_numbers_of_type ?? '').replace(/^\./, '');
        if (!this.symbols.has(type)) return notFound(`type not found: ${quoted(type)}`);
        const numbers = [...(this.extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b);
        return { all_extension_numbers_response: { base_type_name: type, extension_number: numbers } };
      }
      default:
        return {
          error_response: { error_code: INVALID_ARGUMENT, error_message: 'the request asks for nothing' },
        };
    }
  }

  /** The file, then the files it imports (breadth first) not sent on this stream yet. */
  private withDependencies(file: ServedFile, sent: Set<string>): ReflectionAnswer {
    const answer: Uint8Array[] = [file.bytes];
    sent.add(file.name);
    const queue = [...file.dependencies];
    while (queue.length > 0) {
      const name = queue.shift() as string;
      if (sent.has(name)) continue;
      const dependency = this.files.get(name) as ServedFile;
      sent.add(name);
      answer.push(dependency.bytes);
      queue.push(...dependency.dependencies);
    }
    return { file_descriptor_response: { file_descriptor_proto: answer } };
  }

  /** Every name a reflection client may ask for: types, fields, oneofs, enum values, services, methods. */
  private index(file: ServedFile, shape: FileDescriptorProto): void {
    const add = (name: string): void => {
      this.symbols.set(name, file);
    };
    const join = (scope: string, name: string): string => (scope ? `${scope}.${name}` : name);
    const addExtensions = (scope: string, extensions: readonly FieldDescriptorProto[]): void => {
      for (const extension of extensions) {
        add(join(scope, extension.name));
        const extendee = extension.extendee.replace(/^\./, '');
        let numbers = this.extensions.get(extendee);
        if (numbers === undefined) this.extensions.set(extendee, (numbers = new Map()));
        numbers.set(extension.number, file);
      }
    };
    // Enum values are scoped to the enum's parent, as in C++.
    const addEnums = (scope: string, enums: readonly EnumDescriptorProto[]): void => {
      for (const enumType of enums) {
        add(join(scope, enumType.name));
        for (const value of enumType.value) add(join(scope, value.name));
      }
    };
    const addMessages = (scope: string, messages: readonly DescriptorProto[]): void => {
      for (const message of messages) {
        const name = join(scope, message.name);
        add(name);
        for (const field of message.field) add(join(name, field.name));
        for (const oneof of message.oneofDecl) add(join(name, oneof.name));
        addMessages(name, message.nestedType);
        addEnums(name, message.enumType);
        addExtensions(name, message.extension);
      }
    };
    const scope = shape.package;
    addMessages(scope, shape.messageType);
    addEnums(scope, shape.enumType);
    addExtensions(scope, shape.extension);
    for (const service of shape.service) {
      const name = join(scope, service.name);
      add(name);
      for (const method of service.method) add(join(name, method.name));
    }
  }
}

/** A name from the request, quoted and cut short for an error message. */
function quoted(name: string): string {
  return JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name);
}

function notFound(message: string): ReflectionAnswer {
  return { error_response: { error_code: NOT_FOUND, error_message: message } };
}

/**
 * The reflection messages, decoded and encoded with the types of the same compiled set (still
 * protobufjs: its snake_case plain objects with a oneof discriminant are what answer() takes).
 */
export class ReflectionCodec {
  private readonly request: protobuf.Type;
  private readonly response: protobuf.Type;

  constructor(set: Uint8Array) {
    const root = (
      protobuf.Root as unknown as { fromDescriptor(set: protobuf.Message): protobuf.Root }
    ).fromDescriptor(descriptor.FileDescriptorSet.decode(set));
    this.request = root.lookupType('grpc.reflection.v1.ServerReflectionRequest');
    this.response = root.lookupType('grpc.reflection.v1.ServerReflectionResponse');
  }

  /** Throws on bytes that are not a ServerReflectionRequest. */
  decodeRequest(bytes: Uint8Array): ReflectionRequest {
    return this.request.toObject(this.request.decode(bytes), { oneofs: true }) as ReflectionRequest;
  }

  encodeResponse(response: ReflectionResponse): Buffer {
    return Buffer.from(this.response.encode(this.response.fromObject(response)).finish());
  }
}
