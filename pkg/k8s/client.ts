// A raw-JSON REST client for the Kubernetes API built on client-node's KubeConfig
// (authentication, TLS). Objects stay plain JSON end to end: client-node 1.4's
// typed models are generated from 1.34 and drop newer fields.
import * as https from 'node:https';
import * as http from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';

/** An error answered by the API server, with its HTTP code and Status reason. */
export class KubeApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.code === 404;
}
export function isConflict(err: unknown): boolean {
  return err instanceof KubeApiError && err.code === 409;
}
export function isAlreadyExists(err: unknown): boolean {
  return err instanceof KubeApiError && err.code === 409 && err.reason === 'AlreadyExists';
}
export function isGone(err: unknown): boolean {
  return err instanceof KubeApiError && err.code === 410;
}

export const CONTENT_TYPE = {
  json: 'application/json',
  mergePatch: 'application/merge-patch+json',
  jsonPatch: 'application/json-patch+json',
  strategicMergePatch: 'application/strategic-merge-patch+json',
  applyPatch: 'application/apply-patch+yaml',
} as const;

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  readonly query?: Query;
  readonly body?: unknown;
  readonly contentType?: string;
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent<T> {
  readonly type: WatchEventType;
  readonly object: T;
}

interface StatusObject {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
  details?: unknown;
}

function encodeQuery(query: Query | undefined): string {
  if (!query) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

function statusError(code: number, text: string, method: string, path: string): KubeApiError {
  let status: StatusObject | undefined;
  try {
    status = JSON.parse(text) as StatusObject;
  } catch {
    status = undefined;
  }
  const message = status?.message ?? (text.trim() || http.STATUS_CODES[code] || 'request failed');
  return new KubeApiError(code, status?.reason ?? http.STATUS_CODES[code] ?? 'Unknown', message, method, path, status?.details);
}

export class KubeClient {
  private readonly server: URL;
  private agent: https.Agent | http.Agent | undefined;

  constructor(
    readonly kubeConfig: KubeConfig,
    private readonly defaultTimeoutMs = 30_000,
  ) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  static fromFile(path: string): KubeClient {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    return new KubeClient(kc);
  }

  /** From $KUBECONFIG, ~/.kube/config or the in-cluster service account. */
  static fromDefault(kubeconfigPath?: string): KubeClient {
    const kc = new KubeConfig();
    if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
    else kc.loadFromDefault();
    return new KubeClient(kc);
  }

  get serverUrl(): string {
    return this.server.toString();
  }

  private async transportOptions(): Promise<https.RequestOptions> {
    const opts: https.RequestOptions = {};
    await this.kubeConfig.applyToHTTPSOptions(opts);
    if (!this.agent) {
      this.agent =
        this.server.protocol === 'https:'
          ? new https.Agent({ keepAlive: true, maxSockets: 64, ca: opts.ca, cert: opts.cert, key: opts.key, rejectUnauthorized: opts.rejectUnauthorized ?? true })
          : new http.Agent({ keepAlive: true, maxSockets: 64 });
    }
    return { ...opts, agent: this.agent };
  }

  private async open(method: string, path: string, opts: RequestOptions): Promise<{ res: http.IncomingMessage; req: http.ClientRequest }> {
    const transport = await this.transportOptions();
    const basePath = this.server.pathname.replace(/\/$/, '');
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'cascade' };
    for (const [k, v] of Object.entries(transport.headers ?? {})) if (typeof v === 'string') headers[k] = v;
    let payload: string | undefined;
    if (opts.body !== undefined) {
      payload = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['Content-Type'] = opts.contentType ?? CONTENT_TYPE.json;
      headers['Content-Length'] = String(Buffer.byteLength(payload));
    }
    const mod = this.server.protocol === 'https:' ? https : http;
    return await new Promise((resolve, reject) => {
      const req = mod.request(
        {
          ...transport,
          protocol: this.server.protocol,
          hostname: this.server.hostname.replace(/^\[|\]$/g, ''),
          port: this.server.port,
          method,
          path: basePath + path + encodeQuery(opts.query),
          headers,
          signal: opts.signal,
        },
        (res) => resolve({ res, req }),
      );
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** Sends one request and parses the JSON answer; non-2xx becomes KubeApiError. */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const timeout = AbortSignal.timeout(opts.timeoutMs ?? this.defaultTimeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const { res } = await this.open(method, path, { ...opts, signal });
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const code = res.statusCode ?? 0;
    if (code < 200 || code >= 300) throw statusError(code, text, method, path);
    if (!text) return {} as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      // Health endpoints (/readyz, /livez) answer plain text.
      return text as T;
    }
  }

  /**
   * Streams a watch. Calls onEvent for each event; resolves when the server
   * closes the stream, rejects on a transport error, a non-2xx answer, or an
   * ERROR event (as KubeApiError, 410 when the resourceVersion is too old).
   */
  async watch<T>(path: string, query: Query, onEvent: (ev: WatchEvent<T>) => void, signal?: AbortSignal): Promise<void> {
    const { res } = await this.open('GET', path, { query: { ...query, watch: true }, signal });
    const code = res.statusCode ?? 0;
    if (code < 200 || code >= 300) {
      const chunks: Buffer[] = [];
      for await (const chunk of res) chunks.push(chunk as Buffer);
      throw statusError(code, Buffer.concat(chunks).toString('utf8'), 'WATCH', path);
    }
    let buffered = '';
    for await (const chunk of res) {
      buffered += (chunk as Buffer).toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (!line) continue;
        const ev = JSON.parse(line) as WatchEvent<T>;
        if (ev.type === 'ERROR') {
          const st = ev.object as unknown as StatusObject;
          throw new KubeApiError(st.code ?? 500, st.reason ?? 'WatchError', st.message ?? 'watch error', 'WATCH', path, st.details);
        }
        onEvent(ev);
      }
    }
  }

  /** Releases pooled connections so the process can exit. */
  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }
}
