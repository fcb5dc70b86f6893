import type * as http from 'node:http';

const MAX_BODY_BYTES = 1024 * 1024;
const ERROR_TYPE = 'https://github.com/confidential-containers/kbs/errors/';

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** An error as Trustee's KBS answers it: `{"type": "<errors URL><Type>", "detail"}`. */
export function sendError(res: http.ServerResponse, status: number, type: string, detail: string): void {
  sendJson(res, status, { type: `${ERROR_TYPE}${type}`, detail });
}

/** The body as JSON; undefined when it is not JSON or larger than 1 MiB. */
export async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}
