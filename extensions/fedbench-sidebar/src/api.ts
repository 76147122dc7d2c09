/**
 * Calls to the server extension's API (`<base url>fedbench/...`), authenticated as every JupyterLab request
 * (token and XSRF header added by `ServerConnection`). A GET sends the ETag of the answer it already holds
 * and gets `null` back on 304, so an unchanged answer is neither sent nor re-rendered.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** An error answer of the API, with the node's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

/** A client of the sidebar API that remembers each endpoint's ETag. */
export class FedbenchApi {
  private etags = new Map<string, string>();
  readonly settings: ServerConnection.ISettings;

  constructor(settings?: ServerConnection.ISettings) {
    this.settings = settings || ServerConnection.makeSettings();
  }

  /** The URL of an API path. */
  url(path: string): string {
    return URLExt.join(this.settings.baseUrl, 'fedbench', path);
  }

  /** GET `path`: its JSON answer, or null when it has not changed since the last answer. */
  async get<T>(path: string): Promise<T | null> {
    const headers: Record<string, string> = {};
    const etag = this.etags.get(path);
    if (etag) {
      headers['If-None-Match'] = etag;
    }
    const response = await this.request(path, { method: 'GET', headers, cache: 'no-store' });
    if (response.status === 304) {
      return null;
    }
    const body = await this.json(response);
    const tag = response.headers.get('Etag');
    if (tag) {
      this.etags.set(path, tag);
    }
    return body as T;
  }

  /** POST a JSON body to `path`; its JSON answer. Forgets the ETags, so the next GETs answer in full. */
  async post<T>(path: string, body: unknown = {}): Promise<T> {
    const response = await this.request(path, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json' }
    });
    this.etags.clear();
    return (await this.json(response)) as T;
  }

  private async request(path: string, init: RequestInit): Promise<Response> {
    try {
      return await ServerConnection.makeRequest(this.url(path), init, this.settings);
    } catch (error) {
      throw new ApiError(0, `the Jupyter server did not answer: ${error}`);
    }
  }

  private async json(response: Response): Promise<unknown> {
    const text = await response.text();
    let body: any = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.message ? body.message : `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, message);
    }
    return body;
  }
}
