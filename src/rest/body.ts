import type * as http from 'node:http';
import { failure } from './answers';
import { RestRequestError } from './router';

/** Whether the request declares a body (which must be read, or the connection closed). */
export function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/** The request body, or a 413 answer once it passes `limit` (a declared length is checked first). */
export function readBounded(req: http.IncomingMessage, limit: number, withinMs: number): Promise<Buffer> {
  const tooLarge = (): RestRequestError =>
    new RestRequestError(failure(413, `Payload Too Large: the request body exceeds ${limit} bytes`));
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const give = (outcome: () => void): void => {
      clearTimeout(timer);
      req.off('data', onData);
      outcome();
    };
    const timer = setTimeout(
      () =>
        give(() => {
          req.pause();
          reject(
            new RestRequestError(
              failure(408, `Request Timeout: the body did not arrive within ${withinMs} ms`),
            ),
          );
        }),
      withinMs,
    );
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        give(() => {
          req.pause();
          reject(tooLarge());
        });
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => give(() => resolve(Buffer.concat(chunks))));
    req.once('error', () =>
      give(() => reject(new RestRequestError(failure(400, 'the request body did not arrive')))),
    );
  });
}
