import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  GetResourceService,
  ImagePullService,
  SealedSecretService,
  SecureMountService,
  UnsealSecretInputSchema,
} from '../../../src/gen/api_pb';
import { KeyProviderService } from '../../../src/gen/keyprovider_pb';
import { API_METHODS } from '../../../src/server/api';
import {
  API_METHOD_MESSAGES,
  apiMethodCodecs,
  apiServiceMethods,
  generatedServiceMethods,
  messageCodec,
} from '../../../src/server/api-codec';

const GENERATED_SERVICES = [
  SealedSecretService,
  GetResourceService,
  SecureMountService,
  ImagePullService,
  KeyProviderService,
];

test('the method table names every method of the generated services, with their messages, and no other', () => {
  const generated = Object.fromEntries(
    GENERATED_SERVICES.flatMap((service) =>
      service.methods.map((m) => [
        `${service.typeName}/${m.name}`,
        { request: m.input.typeName, response: m.output.typeName },
      ]),
    ),
  );
  assert.deepEqual({ ...API_METHOD_MESSAGES }, generated);
  assert.deepEqual(Object.keys(API_METHOD_MESSAGES).sort(), [...API_METHODS].sort());
});

test('the services registered from the table have the generated services, methods and local names', () => {
  const fromTable = [...apiServiceMethods()].map(([service, methods]) => [
    service,
    methods.map(({ service: s, name, localName, request, response }) => [
      s,
      name,
      localName,
      request.typeName,
      response.typeName,
    ]),
  ]);
  const fromGenerated = GENERATED_SERVICES.map((service) => [
    service.typeName,
    generatedServiceMethods(service).map(({ service: s, name, localName, request, response }) => [
      s,
      name,
      localName,
      request.typeName,
      response.typeName,
    ]),
  ]);
  assert.deepEqual(fromTable, fromGenerated);
});

test('a method codec from the table encodes and decodes as the generated type does', () => {
  const codec = apiMethodCodecs().get('api.SealedSecretService/UnsealSecret');
  assert.ok(codec);
  const generated = messageCodec(UnsealSecretInputSchema);
  const bytes = codec.request.encode({ secret: Buffer.from('sealed.x.y') });
  assert.deepEqual(Buffer.from(bytes), Buffer.from(generated.encode({ secret: Buffer.from('sealed.x.y') })));
  const decoded = codec.request.decode(bytes);
  assert.ok(Buffer.isBuffer(decoded['secret']), 'bytes fields decode to Buffers');
  assert.equal((decoded['secret'] as Buffer).toString(), 'sealed.x.y');
  assert.throws(() => codec.request.decode(Buffer.from([0x0a, 0x05, 0x01])));
});
