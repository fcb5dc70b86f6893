import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { bufferView } from '../lib/bytes';
import {
  FileDescriptorProtoSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  type FileDescriptorProto,
} from '@bufbuild/protobuf/wkt';
import {
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
} from '../gen/grpc/reflection/v1/reflection_pb';

/**
 * gRPC server reflection (v1 and v1alpha share one wire format) over a FileDescriptorSet made
 * by a protobuf compiler: each file is answered with the compiler's own bytes, never rebuilt,
 * so clients that validate descriptors (grpcurl, Go's protodesc, Python's descriptor_pool)
 * load them as they would load generated code.
 */

const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

/** A reflection request: the generated ServerReflectionRequest, or a plain object of its fields. */
export type ReflectionRequest = MessageInitShape<typeof ServerReflectionRequestSchema>;
export type ReflectionResponse = MessageInitShape<typeof ServerReflectionResponseSchema>;
/** The response's oneof: what was asked for, or the error. */
export type ReflectionAnswer = NonNullable<ReflectionResponse['messageResponse']>;

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
    return {
      validHost: request.host ?? '',
      originalRequest: request,
      messageResponse: this.answerOf(request, sent),
    };
  }

  private answerOf(request: ReflectionRequest, sent: Set<string>): ReflectionAnswer {
    const ask = request.messageRequest;
    switch (ask?.case) {
      case 'listServices':
        return { case: 'listServicesResponse', value: { service: this.services.map((name) => ({ name })) } };
      case 'fileByFilename': {
        const file = this.files.get(ask.value);
        return file ? this.withDependencies(file, sent) : notFound(`file not found: ${quoted(ask.value)}`);
      }
      case 'fileContainingSymbol': {
        const symbol = ask.value.replace(/^\./, '');
        const file = this.symbols.get(symbol);
        return file ? this.withDependencies(file, sent) : notFound(`symbol not found: ${quoted(symbol)}`);
      }
      case 'fileContainingExtension': {
        const type = (ask.value.containingType ?? '').replace(/^\./, '');
        const number = ask.value.extensionNumber ?? 0;
        const file = this.extensions.get(type)?.get(number);
        return file
          ? this.withDependencies(file, sent)
          : notFound(`extension not found: ${quoted(type)} has no extension ${number}`);
      }
      case 'allExtensionNumbersOfType': {
        const type = ask.value.replace(/^\./, '');
        if (!this.symbols.has(type)) return notFound(`type not found: ${quoted(type)}`);
        const numbers = [...(this.extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b);
        return {
          case: 'allExtensionNumbersResponse',
          value: { baseTypeName: type, extensionNumber: numbers },
        };
      }
      default:
        return {
          case: 'errorResponse',
          value: { errorCode: INVALID_ARGUMENT, errorMessage: 'the request asks for nothing' },
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
    return { case: 'fileDescriptorResponse', value: { fileDescriptorProto: answer } };
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
  return { case: 'errorResponse', value: { errorCode: NOT_FOUND, errorMessage: message } };
}

/** The reflection messages (v1 and v1alpha share the wire format), as generated from grpc.reflection.v1. */
export class ReflectionCodec {
  /** Throws on bytes that are not a ServerReflectionRequest. */
  decodeRequest(bytes: Uint8Array): ServerReflectionRequest {
    return fromBinary(ServerReflectionRequestSchema, bytes);
  }

  encodeResponse(response: ReflectionResponse): Buffer {
    return bufferView(
      toBinary(ServerReflectionResponseSchema, create(ServerReflectionResponseSchema, response)),
    );
  }
}
