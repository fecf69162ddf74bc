/**
 * Lambda function URL events (payload format 2.0) in and out: the raw body as bytes (a
 * signature covers the exact bytes sent) and lower-cased headers. Anything that is not a
 * POST is answered here, without reading the body.
 */
import { lowerCaseHeaders, Headers } from './verify';

export interface FunctionUrlEvent {
  headers?: Record<string, string | undefined>;
  body?: string;
  isBase64Encoded?: boolean;
  requestContext?: { http?: { method?: string; sourceIp?: string }; requestId?: string };
}

export interface FunctionUrlResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

export type HttpRequest = { ok: true; headers: Headers; body: Buffer } | { ok: false; response: FunctionUrlResult };

export function jsonResponse(statusCode: number, body: unknown): FunctionUrlResult {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: `${JSON.stringify(body)}\n` };
}

export function readFunctionUrlEvent(event: unknown): HttpRequest {
  const e = (event && typeof event === 'object' ? event : {}) as FunctionUrlEvent;
  const method = e.requestContext?.http?.method;
  if (method === undefined) {
    return { ok: false, response: jsonResponse(400, { result: 'refused', reason: 'not a function URL event (no requestContext.http.method): call the webhook over its URL' }) };
  }
  if (method !== 'POST') {
    return { ok: false, response: jsonResponse(405, { result: 'refused', reason: `${method} is not accepted: webhooks are POSTed` }) };
  }
  const raw = e.body ?? '';
  return { ok: true, headers: lowerCaseHeaders(e.headers), body: e.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8') };
}
