/**
 * The GraphiQL page served at /graphiql: a token bar above GraphiQL 5. Everything it loads comes
 * from the gateway itself (bundled by ./build.mjs); nothing is fetched from another host.
 */
import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import { StrictMode, useEffect, useMemo, useRef, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { createGatewayFetcher, describeClose, normalizeToken, type SocketStatus } from './fetcher';
import './page.css';

/** Set by the server in a `<script type="application/json">` block (see transports/http/graphiql.ts). */
interface PageConfig {
  /** Show how to mint a development token (`npm run token`): outside production with HS256. */
  tokenHint: boolean;
  /** No DATABASE_URL, REDIS_URL, AMQP_URL: everything runs in this one process. */
  embedded: boolean;
  /**
   * Embedded, outside production, on the development secret: `POST /dev/token` exists and the
   * page shows the "act as user / as admin" control. Never true in production.
   */
  devTokens: boolean;
}

/** Where the development-only token route listens (see transports/http/dev-token.ts). */
const DEV_TOKEN_URL = '/dev/token';

const ASSETS = '/graphiql/assets';
const TOKEN_KEY = 'cloudphone-realtime:token';

// Monaco's workers are bundled next to the page (no CDN).
(globalThis as unknown as { MonacoEnvironment: unknown }).MonacoEnvironment = {
  getWorker(_id: string, label: string) {
    const name = label === 'json' ? 'json' : label === 'graphql' ? 'graphql' : 'editor';
    return new Worker(`${ASSETS}/${name}.worker.js`);
  },
};

const DEFAULT_QUERY = `# Paste a token above, then run an operation.
# Subscriptions go over the WebSocket; queries and mutations over HTTP.

subscription QuotaChanged {
  quotaChanged {
    eventId
    type
    userId
    occurredAt
    kind
    quotaId
    usagePercent
    severity
    limits { maxDevices totalCpuCores totalMemoryGB }
    usage { currentDevices usedCpuCores usedMemoryGB }
  }
}

query MyQuota {
  quota { id userId status version limits { maxDevices } }
}
`;

function readConfig(): PageConfig {
  const element = document.getElementById('graphiql-config');
  const defaults: PageConfig = { tokenHint: false, embedded: false, devTokens: false };
  try {
    // The server writes this element (transports/http/graphiql.ts): an object of PageConfig's fields.
    const parsed: unknown = element ? JSON.parse(element.textContent ?? '{}') : {};
    return { ...defaults, ...(typeof parsed === 'object' && parsed !== null ? (parsed as Partial<PageConfig>) : {}) };
  } catch {
    return defaults;
  }
}

/** Asks the development-only route for a short-lived token; rejects with the server's reason. */
async function fetchDevToken(sub: string, admin: boolean): Promise<string> {
  const response = await fetch(DEV_TOKEN_URL, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub, admin }),
  });
  const body = (await response.json().catch(() => ({}))) as { token?: string; errors?: { message?: string }[] };
  if (!response.ok || typeof body.token !== 'string') {
    throw new Error(body.errors?.[0]?.message ?? `${DEV_TOKEN_URL} answered ${response.status}`);
  }
  return body.token;
}

/** Development only: fills the token box with a token for a user or an administrator. */
function ActAs({ onToken }: { onToken: (token: string) => void }) {
  const [user, setUser] = useState('alice');
  const [problem, setProblem] = useState<string | undefined>();
  const act = (admin: boolean) => {
    setProblem(undefined);
    fetchDevToken(user.trim(), admin).then(onToken, (error: unknown) => setProblem(error instanceof Error ? error.message : String(error)));
  };
  return (
    <div id="cpr-act-as" className="cpr-act-as">
      <span className="cpr-dev-badge">development only</span>
      <label htmlFor="cpr-act-as-user">act as</label>
      <input id="cpr-act-as-user" value={user} spellCheck={false} autoComplete="off" onChange={(event) => setUser(event.target.value)} />
      <button id="cpr-act-as-as-user" type="button" onClick={() => act(false)}>
        as user
      </button>
      <button id="cpr-act-as-as-admin" type="button" onClick={() => act(true)}>
        as admin
      </button>
      <span className="cpr-muted">fills the JWT box with a 15-minute token signed with the development secret</span>
      {problem && (
        <span id="cpr-act-as-problem" role="alert" className="cpr-problem">
          {problem}
        </span>
      )}
    </div>
  );
}

/** The token's claims for display only; the server verifies it. */
function describeToken(token: string): string {
  if (!token) return 'no token';
  try {
    const part = token.split('.')[1] ?? '';
    const claims = JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/'))) as Record<string, unknown>;
    const roles = Array.isArray(claims.roles) && claims.roles.length > 0 ? ` (${claims.roles.join(', ')})` : '';
    const exp = typeof claims.exp === 'number' ? `, expires ${new Date(claims.exp * 1000).toLocaleString()}` : '';
    return `user ${String(claims.sub)}${roles}${exp}`;
  } catch {
    return 'not a JWT';
  }
}

function App({ config }: { config: PageConfig }) {
  const origin = window.location;
  const [draft, setDraft] = useState(() => localStorage.getItem(TOKEN_KEY) ?? '');
  const [token, setToken] = useState(() => normalizeToken(draft));
  const [socket, setSocket] = useState<SocketStatus>({ state: 'idle' });
  // The fetcher lives as long as the page and reads the box at every Run, not at render time:
  // the ref follows the box after each commit (never written during render).
  const draftRef = useRef(draft);
  useEffect(() => {
    draftRef.current = draft;
  }, [draft]);
  // Only setToken (stable) and localStorage: the first render's copy serves the page's life.
  const remember = (next: string) => {
    setToken(next);
    if (next) localStorage.setItem(TOKEN_KEY, next);
    else localStorage.removeItem(TOKEN_KEY);
  };
  const gateway = useMemo(
    () =>
      // eslint-disable-next-line react-hooks/refs -- the fetcher reads the ref only when an operation runs, never during render
      createGatewayFetcher({
        httpUrl: `${origin.origin}/graphql`,
        wsUrl: `${origin.protocol === 'https:' ? 'wss:' : 'ws:'}//${origin.host}/graphql`,
        currentToken: () => draftRef.current,
        onTokenUsed: remember,
        onSocketStatus: setSocket,
      }),
    // One fetcher for the page's life; it reads the token through the ref above.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [],
  );
  useEffect(() => () => gateway.dispose(), [gateway]);

  const apply = (raw: string) => {
    const next = normalizeToken(raw);
    remember(next);
    gateway.applyToken(next);
  };

  const refused = socket.state !== 'connected' && socket.code !== undefined;
  const params = new URLSearchParams(window.location.search);
  return (
    <div className="cpr-page">
      <form
        className="cpr-token-bar"
        onSubmit={(event) => {
          event.preventDefault();
          apply(draft);
        }}
      >
        <label htmlFor="cpr-token">JWT</label>
        <input
          id="cpr-token"
          type="password"
          autoComplete="off"
          spellCheck={false}
          placeholder="Paste a token (sent as Authorization: Bearer … on HTTP and in connection_init on the socket)"
          value={draft}
          onChange={(event) => setDraft(event.target.value)}
        />
        <button id="cpr-token-apply" type="submit">
          Use token
        </button>
        <span id="cpr-token-who" className="cpr-muted">
          {describeToken(token)}
        </span>
        <span id="cpr-socket" data-state={socket.state} data-code={socket.code} className={`cpr-socket cpr-socket-${socket.state}`}>
          socket: {socket.state}
          {socket.code !== undefined ? ` (${socket.code}${socket.reason ? ` ${socket.reason}` : ''})` : ''}
        </span>
      </form>
      {refused && (
        <div id="cpr-socket-problem" role="alert" className="cpr-problem-bar">
          {socket.state === 'connecting' ? 'Reconnecting; the socket was closed with ' : 'The socket was closed with '}
          <strong>{describeClose(socket.code, socket.reason)}</strong>
        </div>
      )}
      {config.devTokens && (
        <ActAs
          onToken={(minted) => {
            setDraft(minted);
            apply(minted);
          }}
        />
      )}
      {config.tokenHint && (
        <div id="cpr-token-hint" className="cpr-hint">
          {config.embedded ? 'Embedded mode (no DATABASE_URL, REDIS_URL or AMQP_URL). ' : ''}
          {config.devTokens ? 'Development token: "act as" above, or ' : 'Development token: '}
          <code>npm run token -- --sub &lt;userId&gt;</code>, or <code>npm run token -- --sub &lt;userId&gt; --roles admin</code> for an
          administrator. Publish a test event with{' '}
          <code>
            npm run publish-event -- quota.updated '{'{'}"userId":"&lt;userId&gt;"{'}'}'
          </code>
          .
        </div>
      )}
      <div className="cpr-graphiql">
        <GraphiQL
          fetcher={gateway.fetcher}
          defaultQuery={DEFAULT_QUERY}
          initialQuery={params.get('query') ?? undefined}
          initialVariables={params.get('variables') ?? undefined}
          isHeadersEditorEnabled
        />
      </div>
    </div>
  );
}

const root = document.getElementById('graphiql');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App config={readConfig()} />
    </StrictMode>,
  );
}
